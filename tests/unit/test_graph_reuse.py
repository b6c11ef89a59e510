"""Units of equal structure share one parsed graph in graph mode on the CPU, and a unit changed after it
was built never runs a sibling's graph."""

import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn, ops

from mindcv_shufflenet import create_model
from mindcv_shufflenet.kernels import cpu_ops
from mindcv_shufflenet.models import graph_reuse
from mindcv_shufflenet.models.fusion import fold_batchnorm
from mindcv_shufflenet.models.graph_reuse import ReusedGraphUnit, structure_key
from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import ROOT, randomize, run_eval


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


def test_graph_reuse_is_on_for_cpu_and_ascend_and_off_when_switched_off_or_on_gpu(monkeypatch):
    assert graph_reuse.graph_reuse_enabled()
    assert hasattr(FlagBlock(2), "cell_init_args") and FlagBlock(2).no_inline is False  # policy "front"

    monkeypatch.setenv(graph_reuse.ENV_GRAPH_REUSE, "off")
    assert not hasattr(FlagBlock(2), "cell_init_args")

    monkeypatch.delenv(graph_reuse.ENV_GRAPH_REUSE)
    device = {"device_target": "Ascend"}
    monkeypatch.setattr(ms, "get_context", lambda key: device.get(key))
    assert graph_reuse.graph_reuse_enabled() and hasattr(FlagBlock(2), "cell_init_args")
    device["device_target"] = "GPU"
    assert not graph_reuse.graph_reuse_enabled()
    assert not hasattr(FlagBlock(2), "cell_init_args")


# The Ascend recipe's step (amp O3, a fixed loss scale of 1024, jit level O0) trained for two steps on the CPU.
ASCEND_STEP = ["--config", str(ROOT / "configs" / "shufflenetv2" / "shufflenet_v2_x0_5_ascend.yaml"),
               "--device_target", "CPU", "--jit_level", "O0", "--distribute", "false", "--dataset_sink_mode", "false",
               "--synthetic_data", "true", "--num_classes", "10", "--batch_size", "2", "--image_resize", "32",
               "--num_samples", "4", "--epoch_size", "1", "--warmup_epochs", "0", "--val_while_train", "false",
               "--compile_cache", "false", "--plot", "false", "--log_interval", "1"]


def _train_ascend_step(out, reuse, save_graphs=None):
    env = {**os.environ, graph_reuse.ENV_GRAPH_REUSE: "on" if reuse else "off"}
    if save_graphs:
        env.update(MS_DEV_SAVE_GRAPHS="1", MS_DEV_SAVE_GRAPHS_PATH=str(save_graphs))
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *ASCEND_STEP, "--ckpt_save_dir", str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_ascend_step_reuses_graphs_in_the_front_end_only_and_trains_as_without(tmp_path):
    """What makes the reuse safe on Ascend, checked on the CPU with the Ascend recipe's step: the shared graphs
    are marked inline (not cell reuse), none is left after the front end's passes (the back end gets one flat
    graph, as without reuse), and the losses and weights equal a run without reuse."""
    irs = tmp_path / "irs"
    with_reuse = _train_ascend_step(tmp_path / "reuse", True, save_graphs=irs)
    reusing = sorted(irs.glob("*_graph_reusing_*.ir"))
    shared = [path for path in reusing if "subgraph instance: CR_" in path.read_text()]
    assert shared, "no graph was shared: the units did not reuse"
    for path in shared:
        text = path.read_text()
        assert "no_inline: 0" in text and "cell_reuse" not in text
    validated = sorted(irs.glob("*_validate_*.ir"))
    assert validated and not any("CR_" in path.read_text() for path in validated)

    without = _train_ascend_step(tmp_path / "plain", False)
    assert with_reuse == without
    model = "shufflenet_v2_x0_5"
    a, b = (read_checkpoint(tmp_path / run / f"{model}-last.ckpt") for run in ("reuse", "plain"))
    assert set(a) == set(b) and all(np.array_equal(a[name], b[name]) for name in a)
