"""Weights from torchvision and from the official (Megvii) code convert exactly, without torch."""


import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet import create_model
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.convert import (
    ConvertedWeights,
    convert_state,
    from_megvii,
    from_megvii_v2,
    from_megvii_v2_large,
    from_torchvision_v2,
    read_mean_image,
    read_source_weights,
    stage_permutations,
)
from mindcv_shufflenet.convert.torchvision import TORCHVISION_OPTIONS
from mindcv_shufflenet.models import (
    SHUFFLENET_V1_CHANNELS,
    SHUFFLENET_V2_CHANNELS,
    ShuffleNetV2Large,
    load_state_dict,
    save_checkpoint,
)
from mindcv_shufflenet.models.shufflenet_v2_plus import ARCHITECTURE
from tests.helpers import (
    DATA,
    SIZE,
    TOLERANCE,
    max_diff,
    megvii_reference,
    normalize,
    randomize,
    rgb_images,
    run_eval,
    torchvision_reference,
)
from torch_layout_reference import (
    MegviiShuffleNetV1,
    MegviiShuffleNetV2Large,
    MegviiShuffleNetV2Plus,
    TorchvisionShuffleNetV2,
    calibrate,
    megvii_large_state,
    torch_state,
)


def fixture():
    state = dict(np.load(DATA / "torchvision_shufflenet_v2_tiny.npz"))
    expected = np.load(DATA / "torchvision_shufflenet_v2_tiny.expected.npz")
    return state, expected["input"], expected["logits"], tuple(int(c) for c in expected["channels"])


# torchvision


def test_torchvision_fixture_converts_to_torchvisions_own_logits():
    state, x, logits, channels = fixture()
    converted = from_torchvision_v2(state)
    assert (converted.channels, converted.stage_repeats, converted.num_classes) == (channels, (4, 8, 4), 10)
    assert converted.options == TORCHVISION_OPTIONS
    assert max_diff(run_eval(converted.build(), x), logits) <= TOLERANCE


def test_the_mindspore_transcription_of_torchvision_reproduces_torchvision():
    state, x, logits, channels = fixture()
    ref = TorchvisionShuffleNetV2((4, 8, 4), channels, num_classes=10)
    names = torch_state(ref)
    for (_, p), torch_name in zip(ref.parameters_and_names(), names):
        p.set_data(ms.Tensor(state[torch_name]))
    assert max_diff(run_eval(ref, x), logits) <= TOLERANCE


@pytest.mark.parametrize("model", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                                   "shufflenet_v2_x2_0"])
def test_torchvision_weights_of_every_width_convert_exactly(model):
    x = np.random.default_rng(1).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    ref = torchvision_reference(SHUFFLENET_V2_CHANNELS[model[-4:]], 1000, seed=1, images=x)
    converted = convert_state("torchvision", torch_state(ref), model)
    net = create_model(model, **converted.options)
    load_state_dict(net, converted.state)
    assert max_diff(run_eval(net, x), run_eval(ref, x)) <= TOLERANCE


def test_a_wrong_channel_order_is_caught_by_the_comparison():
    state, x, logits, _ = fixture()
    converted = from_torchvision_v2(state)
    swapped = dict(converted.state)
    for name in ("features.2.branch_main.5.weight", "features.2.branch_main.6.gamma", "features.2.branch_main.6.beta",
                 "features.2.branch_main.6.moving_mean", "features.2.branch_main.6.moving_variance"):
        swapped[name] = swapped[name][::-1].copy()
    wrong = ConvertedWeights(swapped, converted.architecture, converted.channels, converted.stage_repeats,
                             converted.num_classes, converted.options).build()
    assert max_diff(run_eval(wrong, x), logits) > 1e-2


def test_every_stage_width_has_a_channel_order():
    for half in range(1, 260):
        for repeats in (1, 2, 4, 8):
            proj_rows, main_rows, unit_rows, after = stage_permutations(half, repeats)
            assert sorted(proj_rows) == sorted(main_rows) == list(range(half))
            assert all(sorted(rows) == list(range(half)) for rows in unit_rows)
            assert all(sorted(a) == list(range(2 * half)) for a in after)


def test_torchvision_state_with_a_missing_tensor_is_refused_by_name():
    state, *_ = fixture()
    del state["stage3.2.branch2.4.running_var"]
    with pytest.raises(ValueError, match=r"stage3\.2\.branch2\.4\.running_var is missing"):
        from_torchvision_v2(state)
    with pytest.raises(ValueError, match="not a torchvision ShuffleNetV2 state dict"):
        from_torchvision_v2({"first_conv.0.weight": np.zeros((24, 3, 3, 3))})


# the official (Megvii) code


@pytest.mark.parametrize("model", ["shufflenet_v2_x0_5", "shufflenet_v1_g3_05", "shufflenet_v1_g8_05"])
def test_official_weights_take_normalized_rgb_and_give_the_official_logits(model):
    rgb = rgb_images((2, 3, SIZE - 1, SIZE - 6))  # odd height: the stem's bottom padding is read too
    ref = megvii_reference(model, seed=2, bgr_images=rgb[:, ::-1].copy())
    converted = convert_state("megvii", torch_state(ref), model)
    assert converted.options["pool_padding"] == "symmetric"
    assert converted.options["stem_pad_value"] == pytest.approx(
        list(-np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)))
    net = create_model(model, **converted.options)
    load_state_dict(net, converted.state)
    official = run_eval(ref, rgb[:, ::-1].copy())  # BGR, 0-255, no mean/std
    assert max_diff(run_eval(net, normalize(rgb)), official) <= TOLERANCE


def test_official_weights_without_the_pad_value_differ_only_on_the_stem_border():
    rgb = rgb_images((2, 3, SIZE - 1, SIZE - 6), seed=4)
    ref = megvii_reference("shufflenet_v2_x0_5", seed=3, bgr_images=rgb[:, ::-1].copy())
    exact = from_megvii_v2(torch_state(ref)).build()
    plain = from_megvii_v2(torch_state(ref), exact_border=False).build()
    assert plain.options["stem_pad_value"] is None
    x = ms.Tensor(normalize(rgb))
    exact.set_train(False)
    plain.set_train(False)
    a, b = exact.first_conv(x).asnumpy(), plain.first_conv(x).asnumpy()
    differs = np.abs(a - b).max(axis=(0, 1)) > 1e-4
    border = np.zeros_like(differs)
    border[0, :] = border[:, 0] = border[-1, :] = True  # odd height: the last output row reads the padding
    assert differs[border].mean() > 0.5 and not differs[~border].any()
    official = run_eval(ref, rgb[:, ::-1].copy())
    exact_diff, plain_diff = (max_diff(run_eval(net, x.asnumpy()), official) for net in (exact, plain))
    assert exact_diff <= TOLERANCE < plain_diff


@pytest.mark.parametrize("model", ["shufflenet_v2_plus_small", "shufflenet_v2_plus_large"])
def test_official_v2_plus_weights_take_normalized_rgb_and_give_the_official_logits(model, tmp_path):
    rgb = rgb_images((2, 3, SIZE - 1, SIZE - 6), seed=5)  # odd height: the stem's bottom padding is read too
    ref = megvii_reference(model, seed=5, bgr_images=rgb[:, ::-1].copy())
    converted = convert_state("megvii", torch_state(ref), model)
    assert converted.matching_model() == model and "pool_padding" not in converted.options
    assert converted.options["architecture"] == list(ARCHITECTURE)
    save_checkpoint(converted.build(), tmp_path / "plus.ckpt", model_name=model)
    net = create_model(model, checkpoint_path=str(tmp_path / "plus.ckpt"))  # the recorded options applied
    official = run_eval(ref, rgb[:, ::-1].copy())  # BGR, 0-255, no mean/std
    assert max_diff(run_eval(net, normalize(rgb)), official) <= TOLERANCE < np.abs(official).max()


def test_official_v2_plus_weights_of_another_architecture_record_it():
    rgb = rgb_images((2, 3, 64, 64), seed=6)
    architecture = (2, 1, 3, 0, 3, 1)
    ref = randomize(MegviiShuffleNetV2Plus((8, 16, 32, 48, 64, 96), num_classes=7, stage_repeats=(1, 2, 2, 1),
                                           architecture=architecture), seed=6)
    calibrate(ref, rgb[:, ::-1].copy(), seed=6)
    converted = from_megvii(torch_state(ref))  # told apart from V1 / V2 by its names
    assert (converted.architecture, converted.stage_repeats, converted.options["architecture"]) == (
        "ShuffleNetV2Plus", (1, 2, 2, 1), list(architecture))
    assert converted.matching_model() is None
    assert max_diff(run_eval(converted.build(), normalize(rgb)), run_eval(ref, rgb[:, ::-1].copy())) <= TOLERANCE


# The official V2.Large / ExLarge structure at reduced widths and depths (the full ones hold 140 / 271 M parameters).
LARGE_REDUCED = {False: dict(stem=(8, 8, 16), outputs=(8, 16, 32, 64), repeats=(2, 2, 3, 2), groups=4, last=48),
                 True: dict(stem=(8, 16, 32), outputs=(16, 32, 64, 128), repeats=(2, 2, 3, 2), groups=4,
                            aux=(8, 16, 24))}


def large_reference(exlarge, seed, bgr_images, with_heads=True):
    ref = randomize(MegviiShuffleNetV2Large(exlarge, num_classes=10, **LARGE_REDUCED[exlarge]), seed=seed)
    stem = dict(ref.parameters_and_names())["first_conv.0.conv.weight"]
    stem.set_data(ms.Tensor(stem.asnumpy() / 60.0))
    calibrate(ref, bgr_images, seed=seed)
    state = megvii_large_state(ref)
    if not with_heads:  # the official Large checkpoint's loader tolerates files without them
        state = {k: v for k, v in state.items() if not k.startswith("predict_")}
    return ref, state


@pytest.mark.parametrize("exlarge", [False, True], ids=["large", "exlarge"])
def test_official_large_weights_give_the_official_logits_and_auxiliary_logits(exlarge):
    rgb = rgb_images((2, 3, 64, 64), seed=9)
    mean_image = np.random.default_rng(9).uniform(90, 130, (64, 64, 3))  # (H, W, BGR), as the official file
    bgr = rgb[:, ::-1] - (0 if exlarge else mean_image.transpose(2, 0, 1)[None])  # the official input
    bgr = np.ascontiguousarray(bgr, dtype=np.float32)
    ref, state = large_reference(exlarge, seed=9, bgr_images=bgr)
    assert any(".se_block.0." in k for k in state) and any(".se_fc1" in k for k in state)  # listed twice
    converted = from_megvii(state, mean_image=mean_image)
    assert converted.options["variant"] == ("exlarge" if exlarge else "large") and converted.options["aux_heads"]
    assert (converted.groups, converted.stage_repeats) == (4, (2, 2, 3, 2)) and converted.matching_model() is None
    assert ("stem_pad_value" in converted.options) == exlarge and ("input_offset" in converted.options) != exlarge
    net = ShuffleNetV2Large(converted.channels, num_classes=10, stage_repeats=converted.stage_repeats,
                            groups=converted.groups, drop_rate=0.0, **converted.options)  # dropout off: train mode
    load_state_dict(net, converted.state)
    official = run_eval(ref, bgr)
    assert max_diff(run_eval(net, normalize(rgb)), official) <= TOLERANCE < np.abs(official).max()
    # training mode: the same main and auxiliary logits (BatchNorm on the batch's statistics)
    net.set_train(True)
    ref.set_train(True)
    ours, theirs = net(ms.Tensor(normalize(rgb))), ref(ms.Tensor(bgr))
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert max_diff(a.asnumpy(), b.asnumpy()) <= 10 * TOLERANCE


def test_official_large_weights_without_auxiliary_heads_convert_to_a_network_without_them():
    rgb = rgb_images((2, 3, 64, 64), seed=10)
    ref, state = large_reference(True, seed=10, bgr_images=np.ascontiguousarray(rgb[:, ::-1]), with_heads=False)
    converted = from_megvii_v2_large(state)
    assert converted.options["aux_heads"] is False and not any(k.startswith("aux_heads") for k in converted.state)
    net = converted.build()
    assert net.aux_heads is None
    assert max_diff(run_eval(net, normalize(rgb)), run_eval(ref, np.ascontiguousarray(rgb[:, ::-1]))) <= TOLERANCE


def test_official_large_weights_need_the_mean_image_and_must_be_consistent():
    rgb = rgb_images((1, 3, 32, 32), seed=11)
    _, state = large_reference(False, seed=11, bgr_images=np.ascontiguousarray(rgb[:, ::-1]))
    with pytest.raises(ValueError, match="minus a per-pixel mean image: give it"):
        from_megvii_v2_large(state)
    broken = dict(state)
    name = next(k for k in broken if k.endswith(".se_block.0.weight"))
    broken[name] = broken[name] + 1
    with pytest.raises(ValueError, match="se_block.0.weight differs from .*se_fc1.weight, the same layer"):
        from_megvii_v2_large(broken, mean_image=np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="are a ShuffleNetV2Large with channels \\(8, 8, 16, 32, 64, 128, 256, 48\\), "
                                         "groups 4, not shufflenet_v2_large"):
        convert_state("megvii", state, "shufflenet_v2_large", mean_image=np.zeros((32, 32, 3)))


def test_the_official_mean_image_file_is_read_as_bgr_height_width(tmp_path):
    image = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3) + 100.5
    values = " ".join(f"{v:.8e}" for v in image.reshape(-1))
    (tmp_path / "mean.xml").write_text(
        f'<?xml version="1.0"?>\n<opencv_storage>\n<Channel>3</Channel>\n<Row>2</Row>\n<Col>3</Col>\n'
        f'<MeanImg type_id="opencv-matrix">\n  <rows>1</rows>\n  <cols>18</cols>\n  <dt>f</dt>\n  <data>\n'
        f'    {values}</data></MeanImg>\n</opencv_storage>\n')
    np.testing.assert_allclose(read_mean_image(tmp_path / "mean.xml"), image)
    np.save(tmp_path / "mean.npy", image)
    np.testing.assert_allclose(read_mean_image(tmp_path / "mean.npy"), image)
    (tmp_path / "bad.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(ValueError, match="is not the official mean image"):
        read_mean_image(tmp_path / "bad.xml")


def test_official_v1_file_is_refused_for_a_v2_model():
    ref = MegviiShuffleNetV1(SHUFFLENET_V1_CHANNELS[3]["05"], group=3)
    with pytest.raises(ValueError, match="not an official ShuffleNetV2 state dict"):
        convert_state("megvii", torch_state(ref), "shufflenet_v2_x0_5")
    with pytest.raises(ValueError, match="are shufflenet_v1_g3_05, not shufflenet_v1_g3_10"):
        convert_state("megvii", torch_state(ref), "shufflenet_v1_g3_10")


# reading files and the command line


def test_official_checkpoint_wrappers_and_dataparallel_prefixes_are_removed(tmp_path):
    np.savez(tmp_path / "w.npz", **{"module.a.weight": np.ones(2), "module.a.num_batches_tracked": np.ones(())})
    assert list(read_source_weights(tmp_path / "w.npz")) == ["a.weight"]


def test_reading_a_pth_without_torch_says_what_to_do(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed here")
    except ImportError:
        pass
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"reading w\.pth needs PyTorch \(pip install torch\); without it, save"):
        read_source_weights(tmp_path / "w.pth")


def test_a_network_with_the_official_stem_padding_trains_in_both_modes():
    from tests.helpers import loss_and_grads

    net = randomize(create_model("shufflenet_v1_g3_05", num_classes=10, pool_padding="symmetric",
                                 stem_pad_value=[-2.1, -2.0, -1.8]), seed=9)
    initial = {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}
    x = np.random.default_rng(0).random((3, 3, 40, 40), dtype=np.float32)
    y = np.array([1, 2, 3], np.int32)
    graph_loss, graph_grads = loss_and_grads(net, x, y, "graph")
    for name, p in net.parameters_and_names():
        p.set_data(ms.Tensor(initial[name]))
    eager_loss, eager_grads = loss_and_grads(net, x, y, "pynative")
    assert np.isfinite(graph_loss) and graph_loss == pytest.approx(eager_loss, rel=1e-5)
    for g, e in zip(graph_grads, eager_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    assert np.abs(graph_grads[0]).max() > 0  # the stem conv's weight gradient passes the padding
