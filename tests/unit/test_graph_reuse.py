"""Units of equal structure share one parsed graph in graph mode on the CPU, and a unit changed after it
was built never runs a sibling's graph."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from mindcv_shufflenet import create_model
from mindcv_shufflenet.kernels import cpu_ops
from mindcv_shufflenet.models import graph_reuse
from mindcv_shufflenet.models.fusion import fold_batchnorm
from mindcv_shufflenet.models.graph_reuse import ReusedGraphUnit, structure_key
from tests.helpers import randomize, run_eval


def units_of(net):
    return [cell for _, cell in net.cells_and_names() if isinstance(cell, ReusedGraphUnit)]


@pytest.mark.parametrize("model, units, distinct", [
    ("shufflenet_v2_x0_5", 16, 6),       # per stage: the stride-2 unit, and one shape for the others
    ("shufflenet_v1_g3_05", 16, 6),      # the same for V1
    ("shufflenet_v2_plus_small", 20, None),
])
def test_units_of_equal_structure_share_a_key_and_units_that_differ_do_not(model, units, distinct):
    net = create_model(model, num_classes=10)
    keys = [structure_key(unit) for unit in units_of(net)]
    assert len(keys) == units
    if distinct is not None:
        assert len(set(keys)) == distinct
    else:  # V2+ mixes kernel sizes, activations, SE and Xception units: fewer keys than units all the same
        assert 1 < len(set(keys)) < units


def test_a_key_follows_what_the_unit_holds_now():
    net = create_model("shufflenet_v2_x0_5", num_classes=10)
    first, second, third = units_of(net)[1:4]  # stride-1 units of stage 2
    assert structure_key(first) == structure_key(second) == structure_key(third)

    second.set_train(False)
    assert structure_key(second) != structure_key(first)  # BatchNorm's branch depends on the mode
    first.set_train(False)
    assert structure_key(second) == structure_key(first)

    fold_batchnorm(second, strict=False)
    assert structure_key(second) != structure_key(first)
    if cpu_ops.enabled():
        cpu_ops.use_native_kernels(third)
        assert structure_key(third) not in (structure_key(first), structure_key(second))


class FlagBlock(ReusedGraphUnit):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.use_relu = True

    def construct(self, x):
        y = self.conv(x)
        if self.use_relu:
            y = ops.relu(y)
        return y


class TwoBlocks(nn.Cell):
    def __init__(self):
        super().__init__()
        self.a = FlagBlock(4)
        self.b = FlagBlock(4)

    def construct(self, x):
        return self.a(x), self.b(x)


def test_a_flag_changed_after_construction_takes_effect_in_graph_mode(graph_mode):
    net = TwoBlocks()
    net.b.use_relu = False  # MindSpore's lazy_inline keyed on the constructor would run a's graph here
    x = ms.Tensor(np.random.default_rng(0).normal(size=(1, 4, 3, 3)).astype(np.float32))
    a, b = (out.asnumpy() for out in net(x))
    assert (a >= 0).all()
    assert (b < 0).any()


def test_a_network_with_one_unit_folded_gives_pynative_logits_in_graph_mode():
    from mindcv_shufflenet import runtime

    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=10), seed=3)
    fold_batchnorm(units_of(net)[2], strict=False)  # its siblings keep their BatchNorm
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    eager = run_eval(net, x)
    runtime.set_mode("graph")
    try:
        graph = run_eval(net, x)
    finally:
        runtime.set_mode("pynative")
    np.testing.assert_allclose(graph, eager, rtol=1e-4, atol=1e-5)


def test_graph_reuse_is_off_when_switched_off_and_on_other_devices(monkeypatch):
    assert graph_reuse.graph_reuse_enabled()
    assert hasattr(FlagBlock(2), "cell_init_args")

    monkeypatch.setenv(graph_reuse.ENV_GRAPH_REUSE, "off")
    assert not hasattr(FlagBlock(2), "cell_init_args")

    monkeypatch.delenv(graph_reuse.ENV_GRAPH_REUSE)
    monkeypatch.setattr(ms, "get_context", lambda key: "Ascend" if key == "device_target" else None)
    assert not graph_reuse.graph_reuse_enabled()
    assert not hasattr(FlagBlock(2), "cell_init_args")
