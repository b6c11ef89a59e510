"""ShuffleNet as a backbone: features_only maps and feature_info for every model, weights loading into it without
the head, graph mode on the CPU fast kernels, and the classifier interface (forward_head, reset_classifier)."""

import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from mindcv_shufflenet import create_model, kernels, runtime
from mindcv_shufflenet.convert import convert_state, from_torchvision_v2, stage_permutations
from mindcv_shufflenet.models import (
    SHUFFLENET_V2_CHANNELS,
    CheckpointMismatchError,
    ShuffleNetV1,
    ShuffleNetV2,
    ShuffleNetV2Large,
    ShuffleNetV2Plus,
    list_models,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
)
from mindcv_shufflenet.models.layers import DepthwiseConv2d, Pool3x3
from tests.helpers import DATA, ROOT, publish_release, randomize, state_of
from torch_layout_reference import TorchvisionShuffleNetV2, torch_state

SIZE = 32  # the smallest input every family takes (five stride-2 steps)
HEAVY = {"shufflenet_v2_large", "shufflenet_v2_exlarge"}  # 140M / 255M parameters: seconds to build
WITHOUT_FINAL_CONV = ("shufflenet_v1", "shufflenet_v2_exlarge")


def images(batch, size=SIZE, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def maps_of(net, x):
    net.set_train(False)
    return [m.asnumpy() for m in net(ms.Tensor(x))]


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.slow) if m in HEAVY else m
                                   for m in list_models()])
def test_every_model_returns_each_feature_map_its_feature_info_describes(model):
    net = create_model(model, features_only=True)  # every index the model has
    info = net.feature_info
    expected = (0, 1, 2, 3) if model.startswith(WITHOUT_FINAL_CONV) else (0, 1, 2, 3, 4)
    assert net.out_indices == info.out_indices == expected
    assert info.reduction() == [4, 8, 16, 32, 32][:len(expected)]
    maps = maps_of(net, images(1))
    assert len(maps) == len(expected)
    cells = dict(net.cells_and_names())
    for index, feature in zip(expected, maps):
        channels, reduction = info.channels(index), info.reduction(index)
        assert feature.shape == (1, channels, SIZE // reduction, SIZE // reduction), (index, info[index])
        assert info.module_name(index) in cells
    assert net.get_classifier() is None and net.num_classes == 0
    assert not [name for name, _ in net.parameters_and_names() if name.startswith(("classifier.", "fc.", "aux_heads."))]


# Each family at a reduced size: one or two units per stage.
SMALL_FAMILIES = {
    "v1": lambda **kw: ShuffleNetV1((12, 24, 48, 96), groups=3, stage_repeats=(1, 2, 1), **kw),
    "v2": lambda **kw: ShuffleNetV2((8, 16, 32, 64, 128), stage_repeats=(1, 2, 1), **kw),
    "v2_50": lambda **kw: ShuffleNetV2((16, 32, 64, 128, 256, 512), stage_repeats=(1, 2, 1, 1), first_stage_stride=1,
                                       se=True, residual=True, **kw),
    "v2_plus": lambda **kw: ShuffleNetV2Plus((8, 16, 32, 48, 64, 96), stage_repeats=(1, 1, 2, 1),
                                             architecture=(0, 1, 0, 3, 2), **kw),
    "large": lambda **kw: ShuffleNetV2Large((8, 8, 16, 32, 64, 128, 256, 64), "large", stage_repeats=(1, 2, 1, 1),
                                            groups=4, aux_channels=(16, 32, 48), **kw),
    "exlarge": lambda **kw: ShuffleNetV2Large((8, 8, 16, 32, 64, 128, 256), "exlarge", stage_repeats=(1, 2, 1, 1),
                                              groups=4, aux_channels=(16, 32, 48), **kw),
}


def all_maps(classifier, x):
    """A classifier's maps at every feature index (``forward_stages`` of a classifier gives them all)."""
    classifier.set_train(False)
    return [m.asnumpy() for m in classifier.forward_stages(ms.Tensor(x))]


@pytest.mark.parametrize("family", list(SMALL_FAMILIES))
def test_out_indices_give_those_maps_of_the_classifiers_weights(family):
    """Each index alone (so the network is built to every depth: only as deep as its deepest map), all of them in
    reverse order, and (V2) the detection maps and mixed orders: the maps are the classifier's, and its weights load
    strictly without the head."""
    build = SMALL_FAMILIES[family]
    classifier = randomize(build(num_classes=5), seed=1)
    x = images(1)
    every = all_maps(classifier, x)
    available = classifier.feature_info.out_indices
    mixed = [(1, 2, 3), (3, 1), (4, 0, 2)] if family == "v2" else []
    for chosen in [(i,) for i in available] + [available[::-1]] + mixed:
        net = build(features_only=True, out_indices=chosen)
        load_state_dict(net, state_of(classifier))  # strict: every parameter of the pruned network is in it
        assert net.feature_info.out_indices == chosen and len(net.feature_info) == len(chosen)
        for index, feature in zip(chosen, maps_of(net, x)):
            assert feature.shape[1] == net.feature_info.channels(index)
            np.testing.assert_allclose(feature, every[available.index(index)], rtol=1e-5, atol=1e-5)
    deepest_first = build(features_only=True, out_indices=(available[0],))
    assert len(deepest_first.features) < len(classifier.features)  # the stages after index 0 are not built


@pytest.mark.parametrize("model, out_indices, message", [
    ("shufflenet_v1_g3_05", (1, 4), "no feature index 4 (no final conv in this family): ShuffleNetV1 has feature "
                                    "indices 0, 1, 2, 3"),
    ("shufflenet_v2_x0_5", (5,), "no feature index 5: ShuffleNetV2 has feature indices 0, 1, 2, 3, 4"),
    ("shufflenet_v2_x0_5", (1, 1), "out_indices lists an index twice: (1, 1)"),
    ("shufflenet_v2_x0_5", (), "out_indices must list at least one feature index"),
    ("shufflenet_v2_x0_5", 3, "out_indices must be a sequence of feature indices such as (1, 2, 3), got 3"),
])
def test_out_indices_a_model_lacks_are_refused_naming_those_it_has(model, out_indices, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_model(model, features_only=True, out_indices=out_indices)


def test_out_indices_without_features_only_are_refused():
    with pytest.raises(ValueError, match="out_indices chooses the maps of a feature extractor: add features_only=True"):
        create_model("shufflenet_v2_x0_5", out_indices=(1, 2, 3))


def assert_close_to(got, expected, tolerance=1e-4):
    """Equal within ``tolerance`` of the maps' size: float32 sums in another order (the transcription's channel
    split and shuffle) differ by ~1e-4 of a stage-4 map's largest value."""
    assert np.abs(got - expected).max() <= tolerance * max(1.0, float(np.abs(expected).max()))


def test_a_torchvision_checkpoint_loads_into_a_backbone_whose_maps_are_the_classifiers_and_torchvisions(tmp_path):
    """The checked-in weights of a real torchvision ShuffleNetV2 (tests/data), converted and written as
    scripts/convert_weights.py writes them, load into a features_only network. Its stage-4 map is the classifier's
    internal one, and every stage map is torchvision's, channel for channel in the conversion's order
    (``stage_permutations``)."""
    state = dict(np.load(DATA / "torchvision_shufflenet_v2_tiny.npz"))
    x = np.load(DATA / "torchvision_shufflenet_v2_tiny.expected.npz")["input"]
    converted = from_torchvision_v2(state)
    path = save_checkpoint(converted.state, tmp_path / "tv.ckpt", options=converted.options,
                           extra={"source": "torchvision"})
    shape = dict(channels=converted.channels, stage_repeats=converted.stage_repeats, **converted.options)
    backbone = ShuffleNetV2(**shape, features_only=True, out_indices=(1, 2, 3))
    load_checkpoint(backbone, path)  # strict, the classifier's head set aside
    classifier = ShuffleNetV2(**shape, num_classes=converted.num_classes)
    load_checkpoint(classifier, path)
    classifier.set_train(False)
    internal = classifier.features(classifier.max_pool(classifier.first_conv(ms.Tensor(x)))).asnumpy()
    maps = maps_of(backbone, x)
    np.testing.assert_allclose(maps[2], internal, rtol=1e-6, atol=1e-6)

    ref = TorchvisionShuffleNetV2(converted.stage_repeats, converted.channels, num_classes=converted.num_classes)
    for (_, p), name in zip(ref.parameters_and_names(), torch_state(ref)):
        p.set_data(ms.Tensor(state[name]))
    ref.set_train(False)
    stage2 = ref.stage2(ref.maxpool(ref.conv1(ms.Tensor(x))))
    stage3 = ref.stage3(stage2)
    torchvision_maps = [m.asnumpy() for m in (stage2, stage3, ref.stage4(stage3))]
    for feature, tv_map, width, repeats in zip(maps, torchvision_maps, converted.channels[1:4],
                                               converted.stage_repeats):
        order = stage_permutations(width // 2, repeats)[3][-1]  # torchvision's channel of each of ours
        assert_close_to(feature, tv_map[:, order])


def test_a_backbones_own_checkpoint_reloads_and_a_classifier_refuses_it(tmp_path):
    net = randomize(create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(2, 3)), seed=4)
    path = save_checkpoint(net, tmp_path / "backbone.ckpt", model_name="shufflenet_v2_x0_5")
    again = create_model("shufflenet_v2_x0_5", features_only=True, checkpoint_path=str(path))
    assert again.out_indices == (2, 3)  # recorded in the file
    for got, expected in zip(maps_of(again, images(1)), maps_of(net, images(1))):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match=r"holds a features_only network's weights \(no classifier head\), so it "
                                         r"cannot make a classifier: load it with features_only=True"):
        create_model("shufflenet_v2_x0_5", checkpoint_path=str(path))
    with pytest.raises(CheckpointMismatchError, match="5 of the network.s 280 parameters are missing: conv_last"):
        create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(4,), checkpoint_path=str(path))


def test_loading_into_a_backbone_is_strict_on_everything_but_the_head(tmp_path):
    source = randomize(create_model("shufflenet_v2_x0_5"), seed=5)
    entries = [{"name": n, "data": ms.Tensor(p.asnumpy())} for n, p in source.parameters_and_names()
               if n != "features.3.branch_main.0.weight"]
    ms.save_checkpoint(entries, str(tmp_path / "missing.ckpt"))
    with pytest.raises(CheckpointMismatchError, match=r"1 of the network's .* missing: features\.3\.branch_main\.0"):
        create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(1,),
                     checkpoint_path=str(tmp_path / "missing.ckpt"))
    entries = [{"name": n, "data": ms.Tensor(p.asnumpy())} for n, p in source.parameters_and_names()]
    entries.append({"name": "neck.0.weight", "data": ms.Tensor(np.zeros((4, 4, 1, 1), np.float32))})
    ms.save_checkpoint(entries, str(tmp_path / "foreign.ckpt"))
    with pytest.raises(CheckpointMismatchError, match=r"1 entries are not parameters of this network: neck\.0\.weight"):
        create_model("shufflenet_v2_x0_5", features_only=True, checkpoint_path=str(tmp_path / "foreign.ckpt"))


def test_released_weights_load_into_a_backbone_without_the_head(tmp_path, monkeypatch):
    source = randomize(create_model("shufflenet_v2_x0_5"), seed=6)
    save_checkpoint(source, tmp_path / "release.ckpt")
    publish_release(monkeypatch, "shufflenet_v2_x0_5", tmp_path / "release.ckpt", tmp_path / "home")
    backbone = create_model("shufflenet_v2_x0_5", pretrained=True, features_only=True, out_indices=(3, 4))
    source.set_train(False)
    final = source.forward_features(ms.Tensor(images(1)))
    np.testing.assert_allclose(maps_of(backbone, images(1))[1], final.asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["v1", "v2"])  # depthwise convs and max pool (V1: average pools too)
def test_backbones_run_in_graph_mode_on_the_cpu_fast_kernels_as_on_mindspores(graph_mode, family):
    if not kernels.enabled():
        pytest.skip("the CPU fast kernels are not available here (no C++ compiler)")
    build = SMALL_FAMILIES[family]
    fast = build(features_only=True, out_indices=(0, 2, 3))
    assert any(isinstance(c, DepthwiseConv2d) and c.cpu_op is not None for _, c in fast.cells_and_names())
    assert any(isinstance(c, Pool3x3) for _, c in fast.cells_and_names())
    with kernels.native_kernels():
        native = build(features_only=True, out_indices=(0, 2, 3))
    load_state_dict(fast, state_of(randomize(native, seed=7)))
    x = images(2, 64)
    graph_maps = maps_of(fast, x)  # compiled: graph mode
    runtime.set_mode("pynative")
    try:
        eager_maps = maps_of(native, x)
    finally:
        runtime.set_mode("graph")
    for got, expected in zip(graph_maps, eager_maps):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# The classifier interface


@pytest.mark.parametrize("family", list(SMALL_FAMILIES))
def test_forward_head_pre_logits_gives_the_num_features_the_classifier_reads(family):
    net = randomize(SMALL_FAMILIES[family](num_classes=5), seed=8)
    net.set_train(False)
    x = ms.Tensor(images(2))
    pooled = net.forward_head(net.forward_features(x), pre_logits=True)
    assert pooled.shape == (2, net.num_features)
    assert net.get_classifier() is net.classifier and net.get_classifier().in_channels == net.num_features
    np.testing.assert_allclose(net.get_classifier()(pooled).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)


def train_steps(net, x, target, steps):
    """``steps`` SGD steps on a mean squared error; returns the losses."""
    loss_net = nn.WithLossCell(net, nn.MSELoss())
    step = nn.TrainOneStepCell(loss_net, nn.SGD(net.trainable_params(), learning_rate=0.1))
    step.set_train(True)
    return [float(step(ms.Tensor(x), ms.Tensor(target)).asnumpy()) for _ in range(steps)]


def test_reset_classifier_gives_a_new_head_that_trains_in_graph_mode(graph_mode):
    net = SMALL_FAMILIES["v2"](num_classes=10)
    net.set_train(False)
    x = images(4)
    assert net(ms.Tensor(x)).shape == (4, 10)  # compiled with the old head
    net.reset_classifier(3)
    assert net.num_classes == 3 and net(ms.Tensor(x)).shape == (4, 3)  # compiled again
    params = dict(net.parameters_and_names())
    assert params["classifier.weight"].shape == (3, 128) and params["classifier.weight"].requires_grad
    before = state_of(net)
    train_steps(net, x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], steps=2)
    after = state_of(net)
    assert not np.array_equal(before["classifier.weight"], after["classifier.weight"])
    assert not np.array_equal(before["features.0.branch_main.0.weight"], after["features.0.branch_main.0.weight"])


def test_reset_classifier_of_a_network_with_auxiliary_heads_resets_them_too():
    net = SMALL_FAMILIES["large"](num_classes=10)
    net.reset_classifier(4)
    net.set_train(True)
    assert [o.shape for o in net(ms.Tensor(images(2)))] == [(2, 4)] * 4  # main and auxiliary logits
    net.reset_classifier(0)  # no classifier: the pooled features
    net.set_train(False)
    assert net.get_classifier() is None and net(ms.Tensor(images(2))).shape == (2, net.num_features)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        net.reset_classifier(-1)
    with pytest.raises(ValueError, match="a features_only network has no classifier to reset"):
        SMALL_FAMILIES["v2"](features_only=True).reset_classifier(3)


# The reason for all this: a detector's backbone


class TinyDetector(nn.Cell):
    """A ShuffleNetV2 backbone and a 1x1 conv head on each of its stride 8, 16 and 32 maps (e.g. per-cell class
    scores), as NanoDet-style detectors put one."""

    def __init__(self, backbone, outputs):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.CellList([nn.Conv2d(c, outputs, 1, has_bias=True) for c in backbone.feature_info.channels()])

    def construct(self, x):
        outputs = ()
        for head, feature in zip(self.heads, self.backbone(x)):
            outputs = outputs + (head(feature),)
        return outputs


class DetectionLoss(nn.Cell):
    def __init__(self, detector):
        super().__init__(auto_prefix=False)
        self.detector = detector

    def construct(self, x, t8, t16, t32):
        p8, p16, p32 = self.detector(x)
        return ops.mean((p8 - t8) ** 2) + ops.mean((p16 - t16) ** 2) + ops.mean((p32 - t32) ** 2)


def test_a_converted_checkpoint_makes_a_backbone_with_the_classifiers_weights_and_stage_maps(tmp_path):
    """torchvision weights of ShuffleNetV2 0.5x converted to a checkpoint: create_model builds the backbone with the
    classifier's weights, and its stage-4 map is the classifier's internal one."""
    x = images(2, 64, seed=3)
    ref = randomize(TorchvisionShuffleNetV2((4, 8, 4), SHUFFLENET_V2_CHANNELS["x0_5"]), seed=3)
    converted = convert_state("torchvision", torch_state(ref), "shufflenet_v2_x0_5")
    path = save_checkpoint(converted.state, tmp_path / "tv.ckpt", model_name="shufflenet_v2_x0_5",
                           options=converted.options)
    backbone = create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(1, 2, 3), checkpoint_path=str(path))
    classifier = create_model("shufflenet_v2_x0_5", checkpoint_path=str(path))
    own = dict(classifier.parameters_and_names())
    for name, p in backbone.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), own[name].asnumpy(), err_msg=name)
    classifier.set_train(False)
    internal = classifier.features(classifier.max_pool(classifier.first_conv(ms.Tensor(x)))).asnumpy()
    np.testing.assert_allclose(maps_of(backbone, x)[2], internal, rtol=1e-6, atol=1e-6)


def test_a_detector_on_a_torchvision_backbone_trains_and_its_gradients_reach_the_backbone(tmp_path):
    """The real torchvision weights (tests/data), converted: a 1x1 conv head on the backbone's stride 8, 16 and 32
    maps trains on the CPU; every backbone weight gets a gradient and changes; before training the backbone's
    weights are the classifier's."""
    converted = from_torchvision_v2(dict(np.load(DATA / "torchvision_shufflenet_v2_tiny.npz")))
    path = save_checkpoint(converted.state, tmp_path / "tv.ckpt", options=converted.options)
    shape = dict(channels=converted.channels, stage_repeats=converted.stage_repeats, **converted.options)
    backbone = ShuffleNetV2(**shape, features_only=True, out_indices=(1, 2, 3))
    load_checkpoint(backbone, path)
    classifier = ShuffleNetV2(**shape, num_classes=converted.num_classes)
    load_checkpoint(classifier, path)
    own = dict(classifier.parameters_and_names())
    start = {name: p.asnumpy().copy() for name, p in backbone.parameters_and_names()}
    for name, value in start.items():
        np.testing.assert_array_equal(value, own[name].asnumpy(), err_msg=name)

    detector = TinyDetector(backbone, outputs=4)
    rng = np.random.default_rng(3)
    x = ms.Tensor(images(2, 64, seed=3))
    targets = [ms.Tensor(rng.standard_normal((2, 4, 64 // s, 64 // s)).astype(np.float32)) for s in (8, 16, 32)]
    loss_net = DetectionLoss(detector)
    backbone_params = [p for p in detector.trainable_params() if p.name.startswith("backbone.")]
    grads = ms.value_and_grad(loss_net, None, backbone_params)(x, *targets)[1]
    assert len(grads) == len([n for n in start if "moving_" not in n])  # every trainable backbone parameter
    assert all(float(np.abs(g.asnumpy()).max()) > 0 for g in grads)

    step = nn.TrainOneStepCell(loss_net, nn.Momentum(detector.trainable_params(), learning_rate=0.05, momentum=0.9))
    step.set_train(True)
    losses = [float(step(x, *targets).asnumpy()) for _ in range(3)]
    assert losses[-1] < losses[0]
    # every convolution changed (a BatchNorm shift that the next conv's BatchNorm, on batch statistics in
    # training, subtracts again gets no gradient there: the betas after the depthwise convs)
    unchanged = [name for name, p in backbone.parameters_and_names()
                 if name.endswith(".weight") and np.array_equal(p.asnumpy(), start[name])]
    assert not unchanged


# Export: one output per map; validate.py and infer.py refuse backbones


def run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


def assert_one_line_error(proc, expected):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def exported_backbones(tmp_path_factory):
    """shufflenet_v2_x0_5's backbone (random weights) exported as ONNX (maps 1, 2, 3) and MindIR (maps 3, 0), with
    the maps the network gives for two batches."""
    from mindcv_shufflenet.deploy import ExportInfo, export_model

    folder = tmp_path_factory.mktemp("exported")
    batches = [images(1, 64, seed=5), images(3, 64, seed=6)]
    files = {}
    for file_format, out_indices in (("ONNX", (1, 2, 3)), ("MINDIR", (3, 0))):
        net = randomize(create_model("shufflenet_v2_x0_5", features_only=True, out_indices=out_indices), seed=9)
        expected = [maps_of(net, x) for x in batches]
        info = ExportInfo(model="shufflenet_v2_x0_5", image_size=64, out_indices=out_indices)
        result = export_model(net, folder / "backbone", file_format, image_size=64, info=info)
        files[file_format] = (result, expected)
    return batches, files


def test_an_onnx_backbone_gives_the_networks_maps_in_onnxruntime(exported_backbones):
    onnxruntime = pytest.importorskip("onnxruntime")
    batches, files = exported_backbones
    result, expected = files["ONNX"]
    assert result.max_abs_diff <= 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["feature_1", "feature_2", "feature_3"]
    assert session.get_modelmeta().custom_metadata_map["mindcv_shufflenet.out_indices"] == "[1, 2, 3]"
    for x, maps in zip(batches, expected):  # a dynamic batch
        got = session.run(None, {"image": x})
        assert [g.shape for g in got] == [m.shape for m in maps]
        for g, m in zip(got, maps):
            assert_close_to(g, m)


def test_a_mindir_backbone_gives_the_networks_maps_after_reloading(exported_backbones):
    batches, files = exported_backbones
    result, expected = files["MINDIR"]
    graph = nn.GraphCell(ms.load(str(result.path)))
    for x, maps in zip(batches, expected):
        got = [g.asnumpy() for g in graph(ms.Tensor(x))]
        assert [g.shape for g in got] == [(len(x), 192, 2, 2), (len(x), 24, 16, 16)]
        for g, m in zip(got, maps):
            assert_close_to(g, m)


def test_infer_and_validate_refuse_an_exported_backbone_in_one_line(exported_backbones, tmp_path):
    from mindcv_shufflenet.deploy import load_exported

    _, files = exported_backbones
    onnx, mindir = files["ONNX"][0].path, files["MINDIR"][0].path
    expected = ("is a feature extractor (exported with --features_only, out_indices {}), not a classifier: "
                "validate.py and infer.py need a file exported without --features_only")
    for path, indices in ((onnx, [1, 2, 3]), (mindir, [3, 0])):
        with pytest.raises(ValueError) as err:
            load_exported(path)  # what both commands open --model_file with
        assert str(err.value) == f"{path} " + expected.format(indices)
    (tmp_path / "val" / "a").mkdir(parents=True)
    assert_one_line_error(run("validate.py", "--model_file", mindir, "--data_dir", tmp_path),
                          f"{mindir} " + expected.format([3, 0]))


def test_infer_and_validate_refuse_a_backbone_checkpoint_in_one_line(tmp_path):
    net = create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(1, 2, 3))
    path = save_checkpoint(net, tmp_path / "backbone.ckpt", model_name="shufflenet_v2_x0_5")
    (tmp_path / "val" / "a").mkdir(parents=True)
    assert_one_line_error(run("infer.py", "--ckpt_path", path, tmp_path),
                          f"{path} holds a features_only network's weights (no classifier head): infer.py needs a "
                          f"classifier's checkpoint")
    assert_one_line_error(run("validate.py", "--ckpt_path", path, "--data_dir", tmp_path),
                          f"{path} holds a features_only network's weights (no classifier head): validate.py needs "
                          f"a classifier's checkpoint")


def test_infer_writes_the_pooled_features_of_each_image_as_npy(tmp_path):
    from PIL import Image

    from mindcv_shufflenet.data.transforms import eval_transforms
    from mindcv_shufflenet.deploy import load_image
    from mindcv_shufflenet.models import model_info

    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=4), seed=10)
    ckpt = save_checkpoint(net, tmp_path / "net.ckpt", model_name="shufflenet_v2_x0_5")
    for name, colour in (("a.png", (200, 30, 30)), ("b.png", (20, 40, 220))):
        Image.new("RGB", (48, 48), colour).save(tmp_path / name)
    result = run("infer.py", "--ckpt_path", ckpt, tmp_path / "a.png", tmp_path / "b.png", "--image_resize", 64,
                 "--features", tmp_path / "emb.npy", "--mode", "pynative")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"features: {tmp_path / 'emb.npy'} (2 x 1024 float32, rows in the order above)" in result.stdout
    pre = model_info("shufflenet_v2_x0_5").preprocessing
    transforms = eval_transforms(64, pre.crop_pct, pre.interpolation, pre.mean, pre.std, pre.channel_order)
    x = np.stack([load_image(tmp_path / n, transforms) for n in ("a.png", "b.png")])
    net.set_train(False)
    pooled = net.forward_head(net.forward_features(ms.Tensor(x)), pre_logits=True).asnumpy()
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), pooled, rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob("*.partial*"))

    refused = run("infer.py", "--ckpt_path", ckpt, tmp_path / "a.png", "--features", tmp_path / "emb.txt")
    assert_one_line_error(refused, "--features writes a NumPy file: give it a name ending in .npy")


def test_export_refuses_out_indices_without_features_only_and_int8_backbones():
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_command", ROOT / "export.py")
    export_command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_command)
    base = ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "w.ckpt"]
    with pytest.raises(ValueError, match="--out_indices chooses the feature maps of --features_only: add "
                                         "--features_only"):
        export_command.parse_args(base + ["--out_indices", "1,2"])
    with pytest.raises(ValueError,
                       match=r"--quantize int8 compares the INT8 file's logits .* \(drop --features_only\)"):
        export_command.parse_args(base + ["--features_only", "--quantize", "int8", "--calib_dir", "images"])
    assert export_command.parse_args(base + ["--features_only", "--out_indices", "3,1"]).out_indices == [3, 1]
