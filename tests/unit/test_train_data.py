"""The training data pipeline (create_train_dataset), the sharded eval pipeline and the digits demo folder,
on tiny image folders made here."""

import random
import re
from types import SimpleNamespace

import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore.dataset import vision
from PIL import Image

from mindcv_shufflenet.constants import IMAGENET_MEAN
from mindcv_shufflenet.data.batch_augment import BatchAugment
from mindcv_shufflenet.data.datasets import create_eval_dataset, create_train_dataset
from mindcv_shufflenet.data.folders import find_classes
from mindcv_shufflenet.data.sampling import train_sample_indices
from mindcv_shufflenet.data.transforms import auto_augment_op, check_augment

CLASSES = ["ant", "bee", "cat"]
COLOURS = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cat": (30, 30, 200)}
SIZES = [(13, 17), (31, 9), (24, 24), (40, 21), (11, 35)]
RAW = dict(mean=(0, 0, 0), std=(1, 1, 1))  # keep pixel values on the 0-255 scale
ALL_AUGMENTATIONS = dict(hflip=0.5, vflip=0.5, auto_augment="randaug-m9-n2-mstd0.5", re_prob=0.5, mixup=0.8,
                         cutmix=1.0, cutmix_prob=0.9, label_smoothing=0.1)


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    """train/<ant|bee|cat>/ with 5 images each, of odd sizes, PNG and JPEG (one .JPG), each class one colour,
    plus a stray text file that must be ignored."""
    root = tmp_path_factory.mktemp("images")
    for name in CLASSES:
        (root / "train" / name).mkdir(parents=True)
        for i, (w, h) in enumerate(SIZES):
            image = Image.new("RGB", (w, h), COLOURS[name])
            image.save(root / "train" / name / f"{i}.{['png', 'jpg', 'JPG', 'png', 'jpeg'][i]}")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return root


def batches(data):
    return [(img, lab) for img, lab in data.iterator(output_numpy=True)]


def class_of(image):
    """The class whose colour an image (on the 0-255 scale, CHW) shows."""
    return int(np.argmax(image.reshape(3, -1).mean(axis=1)))


def test_batches_are_float32_nchw_with_the_int32_labels_of_their_folders(folder):
    data = create_train_dataset(str(folder), batch_size=4, image_size=16, num_parallel_workers=2, **RAW)
    assert (data.classes, data.num_classes, data.soft_labels) == (CLASSES, 3, False)
    assert (data.steps_per_epoch, data.images_per_epoch) == (3, 12)  # 15 images, last batch dropped
    got = batches(data)
    assert len(got) == 3
    order = train_sample_indices(15)[:12]
    assert np.concatenate([lab for _, lab in got]).tolist() == (order // 5).tolist()
    for images, labels in got:
        assert images.shape == (4, 3, 16, 16) and images.dtype == np.float32
        assert labels.shape == (4,) and labels.dtype == np.int32
        assert [class_of(image) for image in images] == labels.tolist()

    kept = create_train_dataset(str(folder), batch_size=4, image_size=16, drop_remainder=False, **RAW)
    assert (kept.steps_per_epoch, kept.images_per_epoch) == (4, 15)
    labels = np.concatenate([lab for _, lab in batches(kept)])
    assert sorted(labels.tolist()) == [0] * 5 + [1] * 5 + [2] * 5  # every image once


def test_num_classes_may_exceed_the_folders_but_not_fall_short(folder):
    assert create_train_dataset(str(folder), batch_size=4, num_classes=10).num_classes == 10
    with pytest.raises(ValueError, match="3 class folders but the model has num_classes=2"):
        create_train_dataset(str(folder), batch_size=4, num_classes=2)


def test_shards_are_disjoint_cover_the_data_and_run_the_same_number_of_steps(folder):
    for shards in (2, 3, 4):
        parts = [train_sample_indices(15, epoch=1, num_shards=shards, shard_id=r) for r in range(shards)]
        assert len({len(p) for p in parts}) == 1  # equal length: every rank runs the same steps
        flat = np.concatenate([p for p in parts])
        assert set(flat.tolist()) == set(range(15))
        assert len(flat) - 15 == (-15) % shards  # only the wrap-around padding repeats
    exact = [train_sample_indices(15, num_shards=3, shard_id=r) for r in range(3)]
    assert sorted(np.concatenate(exact).tolist()) == list(range(15))

    runs = [create_train_dataset(str(folder), batch_size=2, image_size=8, num_shards=2, shard_id=r,
                                 drop_remainder=False, **RAW) for r in range(2)]
    assert [d.steps_per_epoch for d in runs] == [4, 4] and [d.images_per_epoch for d in runs] == [8, 8]
    assert [len(batches(d)) for d in runs] == [4, 4]


def test_the_order_depends_only_on_seed_and_epoch():
    first = train_sample_indices(100, epoch=3, seed=7)
    assert np.array_equal(first, train_sample_indices(100, epoch=3, seed=7))
    assert not np.array_equal(first, train_sample_indices(100, epoch=4, seed=7))
    assert not np.array_equal(first, train_sample_indices(100, epoch=3, seed=8))
    assert sorted(first.tolist()) == list(range(100))
    assert train_sample_indices(10, epoch=5, shuffle=False).tolist() == list(range(10))
    assert train_sample_indices(10, shuffle=False, num_samples=4).tolist() == [0, 1, 2, 3]
    assert len(set(train_sample_indices(10, num_samples=4).tolist())) == 4


def test_same_seed_and_epoch_give_identical_batches_with_two_workers_and_every_augmentation(folder):
    def build(epoch):
        return create_train_dataset(str(folder), batch_size=4, image_size=24, epoch=epoch, seed=3,
                                    num_parallel_workers=2, num_classes=4, **ALL_AUGMENTATIONS)

    epoch0 = batches(build(0))
    batches(build(1))  # what ran before in the process must not matter
    again = batches(build(0))
    assert len(epoch0) == len(again) == 3
    for (img_a, lab_a), (img_b, lab_b) in zip(epoch0, again):
        assert np.array_equal(img_a, img_b) and np.array_equal(lab_a, lab_b)
    epoch1 = batches(build(1))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epoch0, epoch1))


def test_building_a_pipeline_leaves_the_callers_random_streams_alone(folder):
    random.seed(11)
    np.random.seed(11)
    expected = (random.random(), np.random.random())
    random.seed(11)
    np.random.seed(11)
    create_train_dataset(str(folder), batch_size=4, image_size=8)
    assert (random.random(), np.random.random()) == expected


def test_iterator_reseeds_when_someone_else_changed_the_data_seed(folder):
    reference = batches(create_train_dataset(str(folder), batch_size=5, image_size=12, seed=1))
    data = create_train_dataset(str(folder), batch_size=5, image_size=12, seed=1)
    ds.config.set_seed(12345)
    for (img_a, _), (img_b, _) in zip(reference, batches(data)):
        assert np.array_equal(img_a, img_b)


def test_aug_repeats_puts_the_copies_of_an_image_on_different_shards():
    # MindCV's RepeatAugSampler: the epoch keeps its length, each image comes R times.
    single = train_sample_indices(12, aug_repeats=3, shuffle=False)
    assert single.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    shards = [train_sample_indices(12, aug_repeats=3, shuffle=False, num_shards=3, shard_id=r) for r in range(3)]
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3]] * 3
    shuffled = train_sample_indices(12, aug_repeats=3, epoch=2)
    assert len(shuffled) == 12 and all(np.bincount(shuffled)[shuffled] == 3)
    uneven = [train_sample_indices(10, aug_repeats=2, num_shards=3, shard_id=r) for r in range(3)]
    assert [len(s) for s in uneven] == [4, 4, 4]


def test_aug_repeats_in_the_pipeline(folder):
    data = create_train_dataset(str(folder), batch_size=3, image_size=8, aug_repeats=3, epoch=2)
    labels = np.concatenate([lab for _, lab in batches(data)])
    # sample i is image i % 5 of class i // 5 in ImageFolderDataset's order; each batch holds one image 3 times
    assert labels.tolist() == (train_sample_indices(15, aug_repeats=3, epoch=2) // 5).tolist()
    assert (labels.reshape(5, 3) == labels.reshape(5, 3)[:, :1]).all()


def test_mixup_and_cutmix_give_soft_labels_that_sum_to_one_with_smoothing(folder):
    data = create_train_dataset(str(folder), batch_size=5, image_size=16, num_classes=4, mixup=0.8, cutmix=1.0,
                                label_smoothing=0.1)
    assert data.soft_labels
    for images, labels in batches(data):
        assert images.shape == (5, 3, 16, 16)
        assert labels.shape == (5, 4) and labels.dtype == np.float32
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
        assert labels.min() >= 0.1 / 4 - 1e-6  # smoothing gives every class at least eps / C
        assert labels[:, 3].max() == pytest.approx(0.1 / 4)  # no image of class 3: only the smoothing


def test_mixup_blends_each_image_with_the_reversed_batch_and_weights_the_labels_alike():
    x = np.stack([np.full((3, 4, 4), v, np.float32) for v in (0.0, 10.0, 20.0, 30.0)])
    y = [np.int32(c) for c in (0, 1, 2, 0)]
    mix = BatchAugment(5, 3, check_augment(dict(mixup=1.0)), soft_labels=True)
    images, labels = mix(list(x), y, SimpleNamespace(get_epoch_num=lambda: 0, get_batch_num=lambda: 7))
    lam = labels[1, 1]  # row 1: class 1 with weight lam, mixed with row 2 (class 2)
    assert 0 < lam < 1
    np.testing.assert_allclose(images[1], lam * 10.0 + (1 - lam) * 20.0, rtol=1e-5)
    np.testing.assert_allclose(labels[1], [0, lam, 1 - lam], rtol=1e-5)
    again, _ = mix(list(x), y, SimpleNamespace(get_epoch_num=lambda: 0, get_batch_num=lambda: 7))
    assert np.array_equal(images, again)  # keyed by the batch index, not by call order


def test_cutmix_pastes_a_box_from_the_reversed_batch_and_weights_the_labels_by_its_area():
    x = np.stack([np.zeros((3, 16, 16), np.float32), np.ones((3, 16, 16), np.float32)])
    cut = BatchAugment(1, 2, check_augment(dict(cutmix=1.0)), soft_labels=True)
    for batch in range(5):
        images, labels = cut(list(x.copy()), [np.int32(0), np.int32(1)],
                             SimpleNamespace(get_epoch_num=lambda: 0, get_batch_num=lambda batch=batch: batch))
        pasted = images[0].mean()  # image 0 is zeros: the box from image 1 is its only ones
        np.testing.assert_allclose(labels[0], [1 - pasted, pasted], atol=1e-6)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)


def test_cutmix_prob_zero_leaves_images_alone_but_still_gives_soft_labels():
    x = np.stack([np.zeros((3, 4, 4), np.float32), np.ones((3, 4, 4), np.float32)])
    off = BatchAugment(1, 2, check_augment(dict(mixup=0.8, cutmix_prob=0.0, label_smoothing=0.2)), True)
    images, labels = off(list(x), [np.int32(0), np.int32(1)], SimpleNamespace(get_epoch_num=lambda: 0,
                                                                               get_batch_num=lambda: 0))
    assert np.array_equal(images, x)
    np.testing.assert_allclose(labels, [[0.9, 0.1], [0.1, 0.9]], rtol=1e-6)


@pytest.mark.parametrize("options", [
    dict(vflip=1.0, hflip=0.0),
    dict(color_jitter=0.4),
    dict(color_jitter=[0.4, 0.3, 0.2, 0.1]),
    dict(color_jitter=0),
    dict(interpolation="bicubic", scale=(0.5, 1.0), ratio=(0.5, 2.0)),
    dict(interpolation="nearest"),
    dict(interpolation="area"),
    dict(auto_augment="autoaug"),
    dict(auto_augment="autoaugr-mstd0.5"),
    dict(auto_augment="randaug-m7-n3-mstd0.5-inc1"),
    dict(auto_augment="trivialaugwide", color_jitter=0.4),
    dict(re_prob=1.0, re_value="random", re_scale=(0.1, 0.2), re_ratio=(0.5, 2.0)),
    dict(re_prob=1.0, re_value=[1, 2, 3], re_max_attempts=1),
    dict(mixup=0.2),
    dict(cutmix=1.0, cutmix_prob=0.5),
    dict(mean=[100, 100, 100], std=[50, 60, 70]),
], ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()))
def test_each_augmentation_option_runs(folder, options):
    data = create_train_dataset(str(folder), batch_size=5, image_size=20, num_parallel_workers=2, **options)
    images, labels = batches(data)[0]
    assert images.shape == (5, 3, 20, 20) and images.dtype == np.float32 and np.isfinite(images).all()
    assert labels.shape == ((5, 3) if data.soft_labels else (5,))


def test_random_erasing_paints_a_box_with_the_value():
    x = np.full((1, 3, 32, 32), 9.0, np.float32)
    erase = BatchAugment(0, 2, check_augment(dict(re_prob=1.0, re_value=[1, 2, 3])), soft_labels=False)
    images, labels = erase(list(x), [np.int32(1)], SimpleNamespace(get_epoch_num=lambda: 0, get_batch_num=lambda: 0))
    erased = images[0][0] != 9.0
    assert 0.02 * 32 * 32 * 0.5 < erased.sum() < 32 * 32 * 0.5
    assert set(images[0][1][erased].tolist()) == {2.0}
    assert labels.tolist() == [1] and labels.dtype == np.int32


def test_auto_augment_strings_parse_as_mindcv_does():
    assert isinstance(auto_augment_op("autoaug"), vision.AutoAugment)
    assert isinstance(auto_augment_op("autoaugr-mstd0.5"), vision.AutoAugment)
    op = auto_augment_op("randaug-m9-n2-mstd0.5", "bicubic", IMAGENET_MEAN)
    assert (op.num_ops, op.magnitude, op.num_magnitude_bins) == (2, 9, 11)
    assert op.fill_value == (124, 116, 104) and op.interpolation == vision.Inter.BICUBIC
    assert auto_augment_op("randaug").magnitude == 10
    assert auto_augment_op("randaug-m15").magnitude == 10  # timm clips to 10
    assert auto_augment_op("randaug-m9-mmax5").magnitude == 5
    assert auto_augment_op("trivialaugwide").num_magnitude_bins == 32
    assert auto_augment_op("trivialaugwide-m20").num_magnitude_bins == 21
    assert auto_augment_op(None) is None and auto_augment_op("") is None


@pytest.mark.parametrize("spec", ["augmix-m5", "3a", "randaugment", "randaug-w0", "randaug-x9", "randaug-m",
                                  "randaug-mstdx", "autoaug-m9", "trivialaugwide-n2", "randaug-n0", "RandAug-m9"])
def test_bad_auto_augment_strings_are_named_with_the_valid_forms(spec):
    with pytest.raises(ValueError, match="auto_augment") as error:
        auto_augment_op(spec)
    assert repr(spec) in str(error.value)


def test_unknown_augmentation_keys_are_named(folder):
    with pytest.raises(TypeError, match="colour_jitter"):
        create_train_dataset(str(folder), batch_size=4, colour_jitter=0.4)


@pytest.mark.parametrize("options, key", [
    (dict(batch_size=0), "batch_size"),
    (dict(image_size=0), "image_size"),
    (dict(hflip=1.5), "hflip"),
    (dict(vflip=-0.1), "vflip"),
    (dict(re_prob=2), "re_prob"),
    (dict(cutmix_prob=1.1), "cutmix_prob"),
    (dict(mixup=-1), "mixup"),
    (dict(cutmix=float("nan")), "cutmix"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(scale=(0.9, 0.1)), "scale"),
    (dict(ratio=(0, 1.3)), "ratio"),
    (dict(re_scale=(0.1,)), "re_scale"),
    (dict(re_ratio=(3.3, 0.3)), "re_ratio"),
    (dict(color_jitter=[0.1, 0.2]), "color_jitter"),
    (dict(color_jitter=[0.1, 0.2, 0.3, 0.9]), "color_jitter"),
    (dict(interpolation="lanczos"), "interpolation"),
    (dict(mean=[1, 2]), "mean"),
    (dict(std=[1, 0, 1]), "std"),
    (dict(re_value="noise"), "re_value"),
    (dict(re_max_attempts=0), "re_max_attempts"),
    (dict(num_shards=2, shard_id=2), "shard_id"),
    (dict(num_shards=0), "num_shards"),
    (dict(epoch=-1), "epoch"),
    (dict(seed=-5), "seed"),
    (dict(aug_repeats=-1), "aug_repeats"),
    (dict(num_samples=0), "num_samples"),
    (dict(auto_augment=True), "auto_augment"),
])
def test_bad_values_are_named_with_their_valid_range(folder, options, key):
    kwargs = {"batch_size": 4, **options}
    with pytest.raises(ValueError, match=key) as error:
        create_train_dataset(str(folder), **kwargs)
    assert repr(options[key]) in str(error.value)


def test_a_batch_bigger_than_a_shards_epoch_is_refused(folder):
    with pytest.raises(ValueError, match="batch_size 16 is more than the 15 images"):
        create_train_dataset(str(folder), batch_size=16)
    assert create_train_dataset(str(folder), batch_size=16, drop_remainder=False).steps_per_epoch == 1


def test_missing_folders_empty_classes_and_no_images_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "none" / "train"))):
        create_train_dataset(str(tmp_path / "none"), batch_size=1)
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="no class folders: expected"):
        find_classes(tmp_path / "flat")
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    (tmp_path / "d" / "train" / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "d" / "train" / "a" / "x.png")
    with pytest.raises(ValueError, match=re.escape(f"class folder {tmp_path / 'd' / 'train' / 'b'} has no images")):
        create_train_dataset(str(tmp_path / "d"), batch_size=1)
    (tmp_path / "e" / "val" / "a").mkdir(parents=True)
    (tmp_path / "e" / "val" / "a" / "readme.txt").write_text("x")
    (tmp_path / "e" / "val" / "a" / "photo.webp").write_bytes(b"x")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'e' / 'val'} has no images")):
        create_eval_dataset(str(tmp_path / "e"))


def test_hidden_folders_are_not_classes_and_extensions_match_in_any_case(tmp_path):
    for name in ("b", "a", ".ipynb_checkpoints"):
        (tmp_path / name).mkdir()
    for i, name in enumerate(["one.PNG", "two.Jpeg", "three.tif"]):
        Image.new("RGB", (6, 6), (i * 50, 0, 0)).save(tmp_path / "a" / name)
    Image.new("RGB", (6, 6)).save(tmp_path / "b" / "x.BMP")
    assert find_classes(tmp_path) == ["a", "b"]
    data = create_train_dataset(str(tmp_path), "", batch_size=4, image_size=8, shuffle=False)
    assert data.classes == ["a", "b"] and [lab.tolist() for _, lab in batches(data)] == [[0, 0, 0, 1]]


def test_grayscale_palette_and_rgba_images_come_out_as_three_channel_rgb(tmp_path):
    grey = Image.new("L", (10, 12), 100)
    rgba = Image.new("RGBA", (10, 12), (10, 20, 30, 0))
    images = {"grey.png": (grey, (100, 100, 100)), "grey.jpg": (grey, (100, 100, 100)),
              "grey_alpha.png": (Image.new("LA", (10, 12), (100, 7)), (100, 100, 100)),
              "rgba.png": (rgba, (10, 20, 30)),
              "palette.png": (rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE), (10, 20, 30)),
              "cmyk.jpg": (Image.new("RGB", (10, 12), (10, 20, 30)).convert("CMYK"), (10, 20, 30))}
    for name, (image, rgb) in images.items():
        root = tmp_path / name.replace(".", "_")
        (root / "c").mkdir(parents=True)
        image.save(root / "c" / name)
        root = str(root)
        train = create_train_dataset(root, "", batch_size=1, image_size=8, **RAW)
        (train_images, _), = batches(train)
        (eval_images, _), = create_eval_dataset(root, "", 1, 8, **RAW).create_tuple_iterator(output_numpy=True)
        for out in (train_images, eval_images):
            assert out.shape == (1, 3, 8, 8), name
            np.testing.assert_allclose(out[0].reshape(3, -1).mean(axis=1), rgb, atol=2, err_msg=name)


def test_eval_shards_take_every_nth_image_in_file_order_without_padding(folder):
    def labels(**kwargs):
        dataset = create_eval_dataset(str(folder), "train", 4, 8, num_parallel_workers=2, **kwargs)
        return [int(v) for _, lab in dataset.create_tuple_iterator(output_numpy=True) for v in lab]

    whole = labels()
    assert whole == [0] * 5 + [1] * 5 + [2] * 5
    parts = [labels(num_shards=2, shard_id=r) for r in range(2)]
    assert parts == [whole[0::2], whole[1::2]] and [len(p) for p in parts] == [8, 7]
    assert labels(num_shards=4, shard_id=3) == whole[3::4]
    assert labels(num_shards=16, shard_id=15) == []  # more shards than images: an empty shard, no error
    raw = create_eval_dataset(str(folder), "train", 15, 8, mean=(0, 0, 0), std=(1, 1, 1))
    (images, lab), = raw.create_tuple_iterator(output_numpy=True)
    assert [class_of(image) for image in images] == lab.tolist()


def test_digits_folder_has_a_stratified_split_and_is_written_once(tmp_path):
    pytest.importorskip("sklearn")
    from mindcv_shufflenet.data.digits import main, write_digits_imagefolder

    out = tmp_path / "digits"
    counts = write_digits_imagefolder(out, upscale=1)
    assert counts == {"train": 1438, "val": 359, "num_classes": 10}
    assert find_classes(out / "train") == find_classes(out / "val") == [str(d) for d in range(10)]
    per_class = {part: [len(list((out / part / str(d)).iterdir())) for d in range(10)] for part in ("train", "val")}
    assert sum(per_class["train"]) == 1438 and sum(per_class["val"]) == 359
    assert all(abs(v / (t + v) - 0.2) < 0.01 for t, v in zip(per_class["train"], per_class["val"]))
    image = Image.open(next((out / "val" / "7").iterdir()))
    assert image.mode == "RGB" and image.size == (8, 8)
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and pixels.max() == 255  # grey 16 -> 255
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left

    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert write_digits_imagefolder(out, upscale=1) == counts
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamp
    with pytest.raises(FileExistsError, match="seed"):
        write_digits_imagefolder(out, seed=1, upscale=1)
    assert main(["--out", str(out), "--upscale", "1"]) == 0
    assert main(["--out", str(out / "train"), "--upscale", "1"]) == 2  # an unrelated non-empty folder is not touched

    data = create_train_dataset(str(out), batch_size=32, image_size=16, num_parallel_workers=2)
    assert (data.num_classes, data.steps_per_epoch) == (10, 1438 // 32)
    images, labels = batches(data)[0]
    assert images.shape == (32, 3, 16, 16) and labels.max() < 10
