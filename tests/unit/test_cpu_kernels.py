"""The CPU fast kernels (mindcv_shufflenet/kernels): same values and gradients as MindSpore's own
kernels, on by default on the CPU, switchable off, and a clear error or fallback when they cannot be built."""

import logging

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from mindcv_shufflenet import create_model, kernels
from mindcv_shufflenet.kernels import cpu_ops
from mindcv_shufflenet.models.layers import DepthwiseConv2d, Pool3x3, downsample_pool
from tests.helpers import randomize

TOLERANCE = 1e-5  # of the reference's largest magnitude


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def value_and_grads(net, x, dy):
    """Output, input gradient and parameter gradients for the output gradient dy."""
    grad = ops.GradOperation(get_all=True, get_by_list=True, sens_param=True)(net, net.trainable_params())
    (dx,), dparams = grad(x, dy)
    return net(x).asnumpy(), dx.asnumpy(), [g.asnumpy() for g in dparams]


@pytest.fixture(params=["pynative", "graph"])
def mode(request):
    from mindcv_shufflenet import runtime

    runtime.set_mode(request.param)
    yield request.param
    runtime.set_mode("pynative")


def test_kernels_are_on_by_default_on_the_cpu():
    assert kernels.enabled()
    net = create_model("shufflenet_v2_x0_5", num_classes=10)
    depthwise = [c for _, c in net.cells_and_names() if isinstance(c, DepthwiseConv2d)]
    assert len(depthwise) == 16 + 3  # one per unit, plus the projection branch of each stride-2 unit
    assert all(c.cpu_op is not None for c in depthwise)
    assert isinstance(net.max_pool, Pool3x3)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(3, 5, 14, 14), (2, 4, 9, 7), (1, 3, 1, 2)])
def test_depthwise_kernels_match_mindspore_convolution(mode, stride, shape):
    rng = np.random.default_rng(stride)
    channels = shape[1]
    fast = DepthwiseConv2d(channels, stride)
    assert fast.cpu_op is not None
    with kernels.native_kernels():
        native = DepthwiseConv2d(channels, stride)
    assert native.cpu_op is None
    native.weight.set_data(Tensor(rng.standard_normal(native.weight.shape).astype(np.float32)))
    fast.weight.set_data(native.weight.data.copy())
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    dy = Tensor(rng.standard_normal(native(x).shape).astype(np.float32))
    y_native, dx_native, (dw_native,) = value_and_grads(native, x, dy)
    y_fast, dx_fast, (dw_fast,) = value_and_grads(fast, x, dy)
    assert y_fast.shape == y_native.shape
    assert relative_error(y_fast, y_native) < TOLERANCE
    assert relative_error(dx_fast, dx_native) < TOLERANCE
    assert relative_error(dw_fast, dw_native) < TOLERANCE


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["same", "symmetric"])
@pytest.mark.parametrize("shape", [(2, 3, 12, 12), (2, 2, 9, 11), (1, 1, 2, 3)])
def test_pool_kernels_match_mindspore_pools_including_ties(mode, kind, padding, shape):
    rng = np.random.default_rng(1)
    fast = downsample_pool(kind, padding)
    assert isinstance(fast, Pool3x3)
    with kernels.native_kernels():
        native = downsample_pool(kind, padding)
    assert isinstance(native, nn.MaxPool2d if kind == "max" else nn.AvgPool2d)
    # a ReLU's output, as in the networks: many windows hold several equal maxima (zeros), and whole
    # windows of equal values check that the gradient goes where MindSpore sends it
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    x[..., :4, :4] = 0.5
    x = Tensor(x)
    dy = Tensor(rng.standard_normal(native(x).shape).astype(np.float32))
    y_native, dx_native, _ = value_and_grads(native, x, dy)
    y_fast, dx_fast, _ = value_and_grads(fast, x, dy)
    if kind == "max":  # a choice, not arithmetic: exactly MindSpore's
        np.testing.assert_array_equal(y_fast, y_native)
        np.testing.assert_array_equal(dx_fast, dx_native)
    else:
        assert relative_error(y_fast, y_native) < TOLERANCE
        assert relative_error(dx_fast, dx_native) < TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("model", ["shufflenet_v2_x0_5", "shufflenet_v1_g3_05"])
def test_whole_networks_on_the_fast_kernels_match_mindspore_kernels(graph_mode, model):
    fast = create_model(model, num_classes=10)
    with kernels.native_kernels():
        native = create_model(model, num_classes=10)
    randomize(native, seed=3)
    ms.load_param_into_net(fast, {p.name: ms.Parameter(p.data.copy(), name=p.name) for p in native.get_parameters()})
    assert [p.name for p in fast.get_parameters()] == [p.name for p in native.get_parameters()]
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 3, 64, 64)).astype(np.float32))
    labels = Tensor(rng.integers(0, 10, 4).astype(np.int32))
    # BatchNorm on its moving statistics: in training mode, normalizing over a batch of 4 at 2x2 pixels
    # turns float32 rounding differences into percent-level gradient differences (a 3e-7 change of the
    # input changes MindSpore's own input gradient by ~1% there), which would hide what is compared
    results = []
    for net in (fast, native):
        net.set_train(False)
        loss_net = nn.WithLossCell(net, nn.CrossEntropyLoss())
        grad = ops.GradOperation(get_all=True, get_by_list=True)(loss_net, net.trainable_params())
        (dx, _), dparams = grad(x, labels)
        results.append((net(x).asnumpy(), dx.asnumpy(), [g.asnumpy() for g in dparams]))
    (logits_f, dx_f, grads_f), (logits_n, dx_n, grads_n) = results
    assert relative_error(logits_f, logits_n) < TOLERANCE
    assert relative_error(dx_f, dx_n) < TOLERANCE
    for name, g_f, g_n in zip([p.name for p in fast.trainable_params()], grads_f, grads_n):
        assert relative_error(g_f, g_n) < TOLERANCE, name


def test_use_native_kernels_puts_mindspore_layers_back(graph_mode):
    net = create_model("shufflenet_v2_x0_5", num_classes=10, pool_padding="symmetric")
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    net.set_train(False)
    before = net(x).asnumpy()
    assert kernels.use_native_kernels(net) == 16 + 3 + 1
    assert isinstance(net.max_pool, nn.MaxPool2d) and net.max_pool.symmetric_padding == 1
    assert all(c.cpu_op is None for _, c in net.cells_and_names() if isinstance(c, DepthwiseConv2d))
    assert relative_error(net(x).asnumpy(), before) < TOLERANCE


def test_switching_the_kernels_off_with_the_environment(monkeypatch):
    monkeypatch.setenv(cpu_ops.ENV_SWITCH, "0")
    assert not kernels.enabled()
    net = create_model("shufflenet_v2_x0_5", num_classes=10)
    assert isinstance(net.max_pool, nn.MaxPool2d)
    monkeypatch.setenv(cpu_ops.ENV_SWITCH, "sometimes")
    with pytest.raises(ValueError, match="MINDCV_SHUFFLENET_CPU_KERNELS='sometimes' is not understood"):
        kernels.enabled()


def test_without_a_compiler_the_networks_fall_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    cpu_ops._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger=cpu_ops.__name__):
        assert not kernels.enabled()
        net = create_model("shufflenet_v2_x0_5", num_classes=10)
    assert isinstance(net.max_pool, nn.MaxPool2d)
    assert "no C++ compiler found (no-such-compiler-here)" in caplog.text


def test_required_kernels_that_cannot_be_built_are_an_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    monkeypatch.setenv(cpu_ops.ENV_SWITCH, "1")
    with pytest.raises(kernels.KernelBuildError, match="MINDCV_SHUFFLENET_CPU_KERNELS=1 but the CPU kernels are "
                                                       "unavailable: no C\\+\\+ compiler found"):
        create_model("shufflenet_v2_x0_5", num_classes=10)


def test_a_failed_build_leaves_no_library_behind(monkeypatch, tmp_path):
    source = tmp_path / "cpu_kernels.cc"
    source.write_text("this is not C++\n")
    monkeypatch.setattr(cpu_ops, "SOURCE", source)
    monkeypatch.setenv(cpu_ops.ENV_CACHE, str(tmp_path / "cache"))
    with pytest.raises(kernels.KernelBuildError, match="could not build cpu_kernels.cc"):
        cpu_ops._build(cpu_ops._compiler())
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_library_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(cpu_ops.ENV_CACHE, str(tmp_path))
    path = cpu_ops._build(cpu_ops._compiler())
    assert path.startswith(str(tmp_path)) and path.endswith(".so")
    mtime = (tmp_path / path.rsplit("/", 1)[1]).stat().st_mtime_ns
    assert cpu_ops._build(cpu_ops._compiler()) == path
    assert (tmp_path / path.rsplit("/", 1)[1]).stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.rsplit("/", 1)[1]]


@pytest.mark.slow
@pytest.mark.parametrize("amp_level", ["O2", "O3"])
def test_float16_networks_run_on_mindspore_kernels(graph_mode, amp_level):
    net = create_model("shufflenet_v2_x0_5", num_classes=10)
    randomize(net, seed=1)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    net.set_train(False)
    expected = net(x).asnumpy()
    half = ms.amp.auto_mixed_precision(net, amp_level)  # the fast kernels are float32 only
    half.set_train(False)
    assert relative_error(half(x).asnumpy(), expected) < 2e-2


@pytest.mark.slow
def test_several_networks_train_and_infer_in_one_graph_mode_process(graph_mode):
    # each layer owns its operators: networks built one after another, and each compiled for training
    # and for inference at two batch sizes (as scripts/benchmark.py does), all run
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    labels = Tensor(np.array([0, 1], np.int32))
    for name in ("shufflenet_v1_g1_05", "shufflenet_v2_x0_5", "shufflenet_v1_g3_05"):
        net = create_model(name, num_classes=10)
        step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.CrossEntropyLoss()),
                                   nn.Momentum(net.trainable_params(), 0.01, 0.9))
        step.set_train(True)
        assert np.isfinite(step(x, labels).asnumpy())
        net.set_train(False)
        assert net(x).shape == (2, 10) and net(x[:1]).shape == (1, 10)
