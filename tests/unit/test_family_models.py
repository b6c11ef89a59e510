"""The official family beyond MindCV's models: ShuffleNetV2+, ShuffleNet v2-50 with its SE and residual forms,
ShuffleNetV2.Large and ExLarge with their auxiliary heads.

Full-size counts are analytic (``model_counts``) and checked here against built networks at reduced widths;
forward and backward run at 32x32 on reduced widths, in graph and PyNative mode."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import create_model
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.models import (
    Preprocessing,
    ShuffleNetV2,
    ShuffleNetV2Large,
    ShuffleNetV2Plus,
    count_macs,
    count_params,
    model_counts,
    model_info,
)
from mindcv_shufflenet.models.layers import DepthwiseConv2d, HSwish, SqueezeExcite
from mindcv_shufflenet.models.shufflenet_v2 import count_v2
from mindcv_shufflenet.models.shufflenet_v2_large import AUX_LOSS_WEIGHTS, count_v2_large
from mindcv_shufflenet.models.shufflenet_v2_plus import ARCHITECTURE, XceptionBlock, count_v2_plus
from tests.helpers import LARGE_REDUCED, PLUS_REDUCED, V2_50_REDUCED, loss_and_grads, randomize, run_eval, state_of

V2_50_REPEATS = (3, 4, 6, 3)

# (builder of a reduced network, its analytic counter): the same arguments reach both.
REDUCED = {
    "v2_plus": (lambda **kw: ShuffleNetV2Plus(PLUS_REDUCED, **kw), lambda **kw: count_v2_plus(PLUS_REDUCED, **kw)),
    "v2_plus_other_architecture": (
        lambda **kw: ShuffleNetV2Plus(PLUS_REDUCED, stage_repeats=(1, 2, 2, 1),
                                      architecture=(2, 1, 3, 0, 3, 1), **kw),
        lambda **kw: count_v2_plus(PLUS_REDUCED, stage_repeats=(1, 2, 2, 1), architecture=(2, 1, 3, 0, 3, 1), **kw)),
    **{f"v2_50{'_se' * se}{'_residual' * res}": (
        lambda se=se, res=res, **kw: ShuffleNetV2(V2_50_REDUCED, stage_repeats=V2_50_REPEATS, first_stage_stride=1,
                                                  se=se, residual=res, **kw),
        lambda se=se, res=res, **kw: count_v2(V2_50_REDUCED, stage_repeats=V2_50_REPEATS, first_stage_stride=1,
                                              se=se, residual=res, **kw))
       for se in (False, True) for res in (False, True)},
    **{f"{variant}{'_no_aux' * (not aux)}": (
        lambda variant=variant, aux=aux, **kw: ShuffleNetV2Large(LARGE_REDUCED[variant][0], variant, aux_heads=aux,
                                                                 **LARGE_REDUCED[variant][1], **kw),
        lambda variant=variant, aux=aux, **kw: count_v2_large(variant, channels=LARGE_REDUCED[variant][0],
                                                              aux_heads=aux, **LARGE_REDUCED[variant][1], **kw))
       for variant in LARGE_REDUCED for aux in (True, False)},
}


@pytest.mark.parametrize("model, trainable", [("shufflenet_v2_plus_small", 5_137_116),
                                              ("shufflenet_v2_plus_medium", 5_679_840),
                                              ("shufflenet_v2_plus_large", 6_768_220)])
def test_v2_plus_has_the_official_modules_parameter_counts(model, trainable):
    # The official network.py's modules hold 5.137 / 5.680 / 6.768 M parameters (README: 5.1 / 5.6 / 6.7 M).
    assert model_counts(model).params.trainable == trainable


def test_v2_50_is_the_papers_2_3_gflops():
    counts = model_counts("shufflenet_v2_50")
    assert counts.macs / 1e9 == pytest.approx(2.3, rel=0.02)
    assert counts.params.trainable == 16_575_898


@pytest.mark.parametrize("model, with_heads, without_heads", [("shufflenet_v2_large", 140_685_664, 125_120_936),
                                                               ("shufflenet_v2_exlarge", 271_283_296, 255_374_504)])
def test_large_models_have_the_official_modules_parameter_counts(model, with_heads, without_heads):
    # Counted from the official modules: 140.69 / 125.12 M (Large), 271.28 / 255.37 M (ExLarge).
    counts = model_counts(model)
    assert (counts.params.trainable, counts.inference_params.trainable) == (with_heads, without_heads)
    published = model_info(model).published
    assert counts.macs / 1e6 == pytest.approx(published.mflops.value, rel=0.02)
    # The official READMEs count Large with its heads (140.7 M) and ExLarge without them (254.7 M).
    counted = with_heads if model == "shufflenet_v2_large" else without_heads
    assert counted / 1e6 == pytest.approx(published.params_m.value, rel=0.02)


@pytest.mark.parametrize("name", sorted(REDUCED))
@pytest.mark.parametrize("size", [32, 64])
def test_analytic_counts_equal_the_built_networks_counts(name, size):
    build, count = REDUCED[name]
    net = build(num_classes=10)
    counts = count(num_classes=10, image_size=size)
    assert counts.params == count_params(net) and counts.macs == count_macs(net, size)
    heads = count_params(net.aux_heads) if getattr(net, "aux_heads", None) is not None else None
    assert counts.aux_params == (heads or counts.aux_params)
    assert (heads is not None) == bool(counts.aux_params.trainable)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2_plus", "v2_50_se_residual"])
def test_reduced_networks_train_alike_in_graph_and_pynative_mode_at_32x32(name):
    net = randomize(REDUCED[name][0](num_classes=10, drop_rate=0.0), seed=1)  # dropout draws differ by mode
    initial = state_of(net)
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 2).astype(np.int32)
    graph_loss, graph_grads = loss_and_grads(net, x, y, "graph")
    for name_, p in net.parameters_and_names():  # undo the BatchNorm statistics update
        p.set_data(ms.Tensor(initial[name_]))
    eager_loss, eager_grads = loss_and_grads(net, x, y, "pynative")
    assert np.isfinite(graph_loss) and graph_loss == pytest.approx(eager_loss, rel=1e-5)
    assert len(graph_grads) == len(net.trainable_params())
    for g, e in zip(graph_grads, eager_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    assert all(np.isfinite(g).all() for g in graph_grads)
    assert sum(np.abs(g).max() > 0 for g in graph_grads) > 0.9 * len(graph_grads)


def test_v2_plus_units_follow_the_searched_architecture():
    net = create_model("shufflenet_v2_plus_small")
    kinds = []
    for i, unit in enumerate(net.features):
        if isinstance(unit, XceptionBlock):
            kinds.append(3)
        else:
            kinds.append({3: 0, 5: 1, 7: 2}[unit.branch_main[3].kernel_size[0]])
            assert unit.stride == (2 if i in (0, 4, 8, 16) else 1)
        assert (unit.se is not None) == (i >= 8)  # SE from the third stage
        assert isinstance(unit.branch_main[4 if kinds[-1] == 3 else 2], nn.ReLU if i < 4 else HSwish)
    assert tuple(kinds) == ARCHITECTURE and net.options["architecture"] == list(ARCHITECTURE)
    assert isinstance(net.last_se, SqueezeExcite) and isinstance(net.first_conv[2], HSwish)
    assert net.dropout is not None  # the official 0.2
    depthwise = {c.kernel_size[0] for _, c in net.cells_and_names() if isinstance(c, DepthwiseConv2d)}
    assert depthwise == {3, 5, 7}
    fast = {c.kernel_size[0] for _, c in net.cells_and_names() if isinstance(c, DepthwiseConv2d) and c.cpu_op}
    assert fast <= {3}  # 5x5 and 7x7 run on MindSpore's kernels


def test_v2_plus_reaches_7x7_at_224_without_a_max_pool():
    net = ShuffleNetV2Plus(PLUS_REDUCED, num_classes=5)
    net.set_train(False)
    assert net.forward_features(ms.Tensor(np.zeros((1, 3, 224, 224), np.float32))).shape == (1, 96, 7, 7)
    assert run_eval(net, np.random.rand(3, 3, 32, 32).astype(np.float32)).shape == (3, 5)


def test_v2_50_keeps_the_first_stage_at_the_pools_resolution():
    net = create_model("shufflenet_v2_50", num_classes=10, se=True, residual=True)
    first = net.features[0]
    assert first.stride == 1 and first.project and first.branch_proj is not None
    assert all(unit.residual and unit.se is not None for unit in list(net.features)[1:3])
    assert net.options["se"] and net.options["residual"]
    net.set_train(False)
    assert net.forward_features(ms.Tensor(np.zeros((1, 3, 64, 64), np.float32))).shape == (1, 2048, 2, 2)


def test_the_official_input_is_recorded_and_converted_weights_take_the_usual_one():
    for size in ("small", "medium", "large"):
        info = model_info(f"shufflenet_v2_plus_{size}")
        assert info.official_preprocessing == Preprocessing(channel_order="BGR", mean=(0, 0, 0), std=(1, 1, 1))
        assert info.preprocessing == Preprocessing(224, 0.875, "bilinear", "RGB", IMAGENET_MEAN, IMAGENET_STD)
        assert info.weights is None and info.published.official is not None
    assert model_info("shufflenet_v2_50").official_preprocessing is None


@pytest.mark.parametrize("make, message", [
    (lambda: ShuffleNetV2Plus(architecture=(0,) * 19), "one choice in \\[0, 1, 2, 3\\] per unit \\(20\\)"),
    (lambda: ShuffleNetV2Plus(architecture=(3,) + ARCHITECTURE[1:]), "Xception unit \\(choice 3\\) has no stride-2"),
    (lambda: ShuffleNetV2Plus((16, 36, 104, 208, 416)), "stem, 4 stages and conv_last"),
    (lambda: ShuffleNetV2(V2_50_REDUCED, stage_repeats=V2_50_REPEATS, first_stage_stride=3), "first_stage_stride"),
])
def test_invalid_family_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


class AuxLossAndGrads(nn.Cell):
    """The engine's loss (``aux_weights``: the auxiliary heads weighed in) and its gradients."""

    def __init__(self, net, weights):
        super().__init__()
        self.net, self.loss = net, create_loss("CE", aux_weights=weights)
        self.weights = ms.ParameterTuple(net.trainable_params())
        self.grad = ms.ops.GradOperation(get_by_list=True)

    def forward(self, x, y):
        return self.loss(self.net(x), y)

    def construct(self, x, y):
        return self.forward(x, y), self.grad(self.forward, self.weights)(x, y)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(LARGE_REDUCED))
def test_large_models_train_with_their_auxiliary_heads_alike_in_both_modes_at_32x32(variant):
    channels, options = LARGE_REDUCED[variant]
    net = randomize(ShuffleNetV2Large(channels, variant, num_classes=10, drop_rate=0.0, **options), seed=3)
    initial = state_of(net)
    rng = np.random.default_rng(1)
    x = ms.Tensor(rng.random((2, 3, 32, 32), dtype=np.float32))
    y = ms.Tensor(rng.integers(0, 10, 2).astype(np.int32))
    results = {}
    for mode in ("graph", "pynative"):
        from mindcv_shufflenet import runtime

        runtime.set_mode(mode)
        try:
            for name_, p in net.parameters_and_names():
                p.set_data(ms.Tensor(initial[name_]))
            net.set_train(True)
            loss, grads = AuxLossAndGrads(net, AUX_LOSS_WEIGHTS[1:])(x, y)
            results[mode] = (float(loss.asnumpy()), [g.asnumpy() for g in grads])
        finally:
            runtime.set_mode("pynative")
    (graph_loss, graph_grads), (eager_loss, eager_grads) = results["graph"], results["pynative"]
    assert np.isfinite(graph_loss) and graph_loss == pytest.approx(eager_loss, rel=1e-5)
    scale = max(np.abs(e).max() for e in eager_grads)  # deep random networks: gradients up to 1e4, float32 sums
    for g, e in zip(graph_grads, eager_grads):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-6 * scale)
    names = [name_ for name_, p in net.parameters_and_names() if p.requires_grad]  # trainable_params' order
    heads = [g for name_, g in zip(names, graph_grads) if name_.startswith("aux_heads.")]
    assert heads and all(np.abs(g).max() > 0 for g in heads)  # the heads learn from their weighted losses

    # The loss is the official weighted sum: 1.0 * main + 0.7 * aux(stage 3) + 0.5 * aux(stage 2) + 0.3 * aux(stage 1)
    for name_, p in net.parameters_and_names():
        p.set_data(ms.Tensor(initial[name_]))
    outputs = net(x)
    assert len(outputs) == 4 and all(o.shape == (2, 10) for o in outputs)
    single = create_loss("CE")
    expected = sum(w * float(single(o, y).asnumpy()) for w, o in zip(AUX_LOSS_WEIGHTS, outputs))
    assert eager_loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("variant", sorted(LARGE_REDUCED))
def test_the_auxiliary_heads_run_only_in_training(variant):
    channels, options = LARGE_REDUCED[variant]
    net = ShuffleNetV2Large(channels, variant, num_classes=4, **options)
    x = ms.Tensor(np.random.rand(2, 3, 32, 32).astype(np.float32))
    net.set_train(False)
    assert net(x).shape == (2, 4)
    net.set_train(True)
    assert [o.shape for o in net(x)] == [(2, 4)] * 4
    without = ShuffleNetV2Large(channels, variant, num_classes=4, aux_heads=False, **options)
    without.set_train(True)
    assert without(x).shape == (2, 4) and without.options["aux_heads"] is False
    assert {n for n, _ in net.parameters_and_names()} - {n for n, _ in without.parameters_and_names()} == {
        n for n, _ in net.parameters_and_names() if n.startswith("aux_heads.")}


def test_large_models_are_registered_with_the_official_structure_and_facts():
    large, exlarge = model_info("shufflenet_v2_large"), model_info("shufflenet_v2_exlarge")
    assert large.pool_padding == exlarge.pool_padding == "symmetric"
    assert large.official_preprocessing == exlarge.official_preprocessing == Preprocessing(
        channel_order="BGR", mean=(0, 0, 0), std=(1, 1, 1))
    assert "mean image" in large.official_input_note and not exlarge.official_input_note
    assert (large.published.official.top1_accuracy, exlarge.published.official.top1_accuracy) == (81.44, 84.48)
    net = ShuffleNetV2Large(*LARGE_REDUCED["large"][:1], "large", **LARGE_REDUCED["large"][1])
    bn = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    assert all(c.eps == pytest.approx(1e-9) for c in bn)  # the official Large's Conv_BN_ReLU
    first, later = net.features[1][0], net.features[1][1]
    assert first.proj is not None and first.down is not None and later.proj is None and later.down is None
    assert first.branch_main[3].group == 4 and first.branch_main[3].stride == (2, 2)
