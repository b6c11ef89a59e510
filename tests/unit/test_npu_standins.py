"""The code only an Ascend NPU runs, compiled and run here: in graph mode on the CPU, with the NPU-only
operations replaced by the stand-ins of :mod:`mindcv_shufflenet.npu` (``MINDCV_SHUFFLENET_ASCEND_STANDIN``):
the train step with every Ascend-only branch on (float-status clear and read, sinking, step statistics,
BatchNorm backup, accumulation with a dynamic scale, EMA, clipping). train.py's sunk loop end to end:
integration/test_ascend_standins.py."""

import inspect

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import npu
from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.engine.train_step import StepStatsReader, TrainStep


@pytest.fixture
def standin(monkeypatch):
    """Turn the stand-ins on (as the given chip) for this test."""
    def use(chip="910A"):
        monkeypatch.setenv(npu.STANDIN_ENV, chip)
    use()
    return use

# --------------------------------------------------------------------------------------------- the switch

def test_the_standin_switch_knows_its_chips(monkeypatch):
    monkeypatch.delenv(npu.STANDIN_ENV, raising=False)
    assert npu.standin_chip() is None and not npu.ascend_path("CPU") and npu.ascend_path("Ascend")
    assert npu.float_status() is None  # a CPU run without the switch never builds the NPU branch
    for chip, register in [("910A", True), ("910B", False), ("910B-saturation", True)]:
        monkeypatch.setenv(npu.STANDIN_ENV, chip)
        assert npu.ascend_path("CPU") and npu.uses_float_status_register() is register
        assert (npu.float_status() is not None) is register
    monkeypatch.setenv(npu.STANDIN_ENV, "910C")
    with pytest.raises(ValueError, match=r"^MINDCV_SHUFFLENET_ASCEND_STANDIN='910C' is not a chip .*910A"):
        npu.standin_chip()

def test_host_data_sink_has_data_sinks_signature_and_loops_the_dataset():
    def parameters(function):
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert parameters(npu.host_data_sink) == parameters(ms.data_sink) == parameters(npu.data_sink)
    data = ds.NumpySlicesDataset({"x": np.arange(5, dtype=np.float32)}, shuffle=False)
    seen = []

    def record(x):
        seen.append(float(x.asnumpy()))
        return x

    sink = npu.host_data_sink(record, data, sink_size=2)
    assert float(sink().asnumpy()) == 1.0  # the last of its sink_size batches
    sink(), sink()
    assert seen == [0, 1, 2, 3, 4, 0]  # past the end the queue starts the dataset again
    with pytest.raises(ValueError, match="sink_size"):
        npu.host_data_sink(record, data, sink_size=0)

# --------------------------------------------------------------------------------------------- the step

class TinyNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(6, 5)
        self.bn = nn.BatchNorm1d(5)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(5, 3)

    def construct(self, x):
        return self.fc2(self.relu(self.bn(self.fc1(x))))

def _tiny_step(**kwargs):
    ms.set_seed(0)
    net = TinyNet()
    step = TrainStep(net, create_loss("CE"), nn.Momentum(net.trainable_params(), 0.1, 0.9), **kwargs)
    step.set_train(True)
    return net, step

def _weights(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}

@pytest.mark.parametrize("chip", ["910A", "910B-saturation"])
def test_the_float_status_branch_compiles_in_graph_mode_and_skips_an_overflowing_step(standin, graph_mode, chip):
    # The branch that stopped every run on 910A at its first step (an import inside construct).
    standin(chip)
    net, step = _tiny_step(loss_scale=1024.0, dynamic_loss_scale=True)
    assert step.float_status is not None
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.normal(size=(8, 6)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 3, 8).astype(np.int32))
    _, finite, _ = step(x, y)
    assert bool(finite.asnumpy())
    before = _weights(net)
    _, finite, _ = step(ms.Tensor(np.full((8, 6), np.inf, np.float32)), y)
    assert not bool(finite.asnumpy())
    assert float(step.scale_sense.asnumpy()) == 512.0
    for name, value in _weights(net).items():  # weights and BatchNorm statistics as they were
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    _, finite, _ = step(x, y)  # the register was cleared: the next clean step is applied
    assert bool(finite.asnumpy()) and int(step.skipped_updates.asnumpy()) == 1

def _ascend_step(model: str):
    """``model``'s step with every Ascend-only branch on, as small as the network allows."""
    from mindcv_shufflenet import create_model

    ms.set_seed(0)
    net = create_model(model, num_classes=4)
    step = TrainStep(net, create_loss("CE", label_smoothing=0.1), nn.Momentum(net.trainable_params(), 0.01, 0.9),
                     loss_scale=64.0, dynamic_loss_scale=True, clip_grad_norm=5.0, ema_decay=0.9,
                     accumulation_steps=2)
    step.set_train(True)
    return net, step

def _batches():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(6, 2, 3, 32, 32)).astype(np.float32)
    images[2, 0, 0, 0, 0] = np.inf  # the first micro-step of the second window overflows
    images[3, 1, 0, 0, 0] = np.inf  # and so does its second: one halving for the window
    labels = rng.integers(0, 4, (6, 2)).astype(np.int32)
    return images, labels

@pytest.mark.slow
@pytest.mark.parametrize("model", ["shufflenet_v1_g3_05", "shufflenet_v2_x0_5"])
def test_every_ascend_branch_compiles_and_runs_fed_and_sunk_alike(standin, graph_mode, model):
    images, labels = _batches()
    results = {}
    for feed in ("fed", "sunk"):
        net, step = _ascend_step(model)
        assert step.float_status is not None and step.keep_bn_stats and step.use_ema and step.accumulate
        reader = StepStatsReader(step)
        if feed == "fed":
            for x, y in zip(images, labels):
                step(ms.Tensor(x), ms.Tensor(y))
        else:
            data = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False)
            sink = npu.data_sink(step, data, sink_size=1, jit_config=ms.JitConfig(jit_level="O0"))
            for _ in range(len(images)):
                sink()
        stats = reader.read()
        assert stats.bad_steps == 2, feed
        assert float(step.scale_sense.asnumpy()) == 32.0, feed  # two bad micro-steps, one window: halved once
        assert int(step.skipped_updates.asnumpy()) == 1 and int(step.optimizer.global_step.asnumpy()[0]) == 3
        results[feed] = _weights(step)
    assert any(np.any(v != 0) for k, v in results["sunk"].items() if k.startswith("ema."))
    for name, value in results["fed"].items():
        np.testing.assert_allclose(results["sunk"][name], value, rtol=1e-5, atol=1e-6, err_msg=name)

