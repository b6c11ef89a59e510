"""Bad files in the image folders do not stop a run: convertible images are read as RGB, files that cannot be
decoded are left out and counted in one warning, and a file that fails only when decoded is replaced in its
batch; epochs stay deterministic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet.data.datasets import create_eval_dataset, create_train_dataset
from mindcv_shufflenet.data.folders import skipped_summary, unreadable_reason

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cat": (30, 30, 200)}
RAW = dict(mean=(0, 0, 0), std=(1, 1, 1), hflip=0.0)


def _jpeg_bytes(size=(24, 20), colour=(200, 30, 30)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


# name -> (bytes writer, expected reason or None when readable)
def _odd_modes(folder: Path, colour) -> None:
    rgb = Image.new("RGB", (21, 13), colour)
    rgb.convert("RGBA").save(folder / "rgba.png")
    rgb.convert("LA").save(folder / "la.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.save(folder / "upper.JPEG")
    rgb.save(folder / "tiff.tif")
    rgb.save(folder / "bitmap.bmp")


BAD_FILES = {
    "empty.jpg": (b"", "empty file"),
    "text.jpg": (b"this is not an image at all", "not an image"),
    "page.png": (b"<html>404 not found</html>", "not an image"),
    "animation.jpg": (b"GIF89a" + bytes(40), "a GIF image, which MindSpore cannot decode"),
    # MindSpore's own Decode kills the process (SIGFPE) on this one: it must never reach the pipeline.
    "truncated.jpg": (_jpeg_bytes()[:200], "truncated or corrupt"),
    "header_only.jpg": (_jpeg_bytes()[:20], "truncated or corrupt"),
    "notes.md": (b"# notes", "no image file extension"),
}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """MindSpore writes the last image it failed to decode to ./abnormal_image.jpg: keep it out of the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def messy(tmp_path_factory) -> Path:
    """train/ and val/ with 3 colour-coded classes of 6 good images each; class 'ant' also holds every kind of
    bad file, convertible modes (RGBA, LA, palette, CMYK, TIFF, BMP, 16-bit grey in 'cat'), a hidden file, and
    one JPEG whose header and end are fine but whose body cannot be decoded."""
    root = tmp_path_factory.mktemp("messy")
    for split in ("train", "val"):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (17 + i, 23), colour).save(folder / f"{i}.png")
        ant = root / split / "ant"
        for filename, (data, _) in BAD_FILES.items():
            (ant / filename).write_bytes(data)
        (ant / ".DS_Store").write_bytes(bytes(64))
        (ant / "body.jpg").write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(400) + b"\xff\xd9")
        _odd_modes(ant, COLOURS["ant"])
        grey16 = np.full((9, 31), 30 * 257, np.uint16)  # the grey of the blue class in 16 bits
        Image.fromarray(grey16).save(root / split / "cat" / "grey16.png")
    return root


@pytest.mark.parametrize("filename", sorted(name for name in BAD_FILES if not name.endswith(".md")))
def test_unreadable_files_are_recognised_cheaply(messy, filename):
    assert unreadable_reason(messy / "train" / "ant" / filename) == BAD_FILES[filename][1]


@pytest.mark.parametrize("filename", ["rgba.png", "la.png", "palette.png", "cmyk.jpg", "upper.JPEG", "tiff.tif",
                                      "bitmap.bmp", "0.png"])
def test_convertible_images_are_readable(messy, filename):
    assert unreadable_reason(messy / "train" / "ant" / filename) is None


def test_a_training_epoch_skips_unreadable_files_and_keeps_every_label(messy):
    data = create_train_dataset(str(messy), batch_size=4, image_size=8, num_parallel_workers=2, **RAW)
    skipped = {Path(path).name: reason for path, reason in data.skipped}
    assert skipped == {name: reason for name, (_, reason) in BAD_FILES.items()}  # hidden files are not listed
    # 18 good + 7 convertible + 16-bit grey + body.jpg (replaced when it fails to decode) = 27 read per epoch
    assert data.steps_per_epoch == 27 // 4
    for epoch in (0, 1):
        data = create_train_dataset(str(messy), batch_size=4, image_size=8, epoch=epoch, num_parallel_workers=2,
                                    **RAW)
        batches = list(data.iterator(output_numpy=True))
        assert len(batches) == data.steps_per_epoch
        for images, labels in batches:
            assert images.shape == (4, 3, 8, 8) and np.isfinite(images).all()
            # Every image shows its label's colour: no row is shifted, a replaced row keeps its own label.
            colour = images.reshape(4, 3, -1).mean(axis=2)
            for c, label in zip(colour, labels):
                if label == 2 and np.ptp(c) < 1:  # the 16-bit grey image of 'cat' is grey
                    continue
                assert int(np.argmax(c)) == int(label), (c, label)


def test_an_epoch_with_bad_files_repeats_exactly(messy):
    def epoch_arrays():
        data = create_train_dataset(str(messy), batch_size=4, image_size=8, epoch=3, seed=11,
                                    num_parallel_workers=2, hflip=0.5, color_jitter=0.3)
        return [(x.copy(), y.copy()) for x, y in data.iterator(output_numpy=True)]

    first, second = epoch_arrays(), epoch_arrays()
    assert len(first) == len(second)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)


def test_evaluation_leaves_unreadable_files_out_and_warns_once(messy):
    messages = []
    data = create_eval_dataset(str(messy), "val", batch_size=5, image_size=8, crop_pct=1.0, num_parallel_workers=2,
                               warn=messages.append)
    labels = np.concatenate([y for _, y in data.create_tuple_iterator(output_numpy=True)])
    assert len(labels) == 27
    assert len(messages) == 1
    assert messages[0].startswith(f"skipping 7 file(s) in {messy / 'val'} that are not readable images (")
    assert "2 not an image" in messages[0] and "1 empty file" in messages[0]


def test_skipped_summary_counts_reasons_and_shows_a_few():
    skipped = [(f"/d/train/a/{i}.jpg", "empty file") for i in range(4)] + [("/d/train/b/x.png", "not an image")]
    line = skipped_summary(skipped, "/d/train", shown=2)
    assert line == ("skipping 5 file(s) in /d/train that are not readable images (4 empty file, 1 not an image): "
                    "a/0.jpg, a/1.jpg, ...")


@pytest.mark.slow
def test_validate_command_warns_and_reports_accuracy_on_a_messy_folder(messy, tmp_path):
    import mindspore as ms

    from mindcv_shufflenet import create_model

    ms.save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=3), str(tmp_path / "net.ckpt"))
    proc = subprocess.run([sys.executable, str(ROOT / "validate.py"), "--model", "shufflenet_v2_x0_5", "--ckpt_path",
                           str(tmp_path / "net.ckpt"), "--data_dir", str(messy), "--image_resize", "16",
                           "--crop_pct", "1.0"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"warning: skipping 7 file(s) in {messy / 'val'}" in proc.stderr
    assert "(27 images in" in proc.stdout


@pytest.mark.slow
def test_training_command_warns_lists_skipped_files_and_finishes(messy, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config",
                           str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml"), "--data_dir", str(messy),
                           "--batch_size", "8", "--epoch_size", "2", "--warmup_epochs", "0", "--decay_epochs", "2",
                           "--ckpt_save_dir", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "GLOG_v": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: skipping 7 file(s) in {messy / 'train'}" in proc.stdout
    assert "epoch 2/2 done" in proc.stdout
    listed = (out / "skipped_files.txt").read_text().splitlines()
    assert len(listed) == 7 and all("\t" in line for line in listed)
