"""Faults lose nothing, in process: a non-finite step leaves weights and BatchNorm statistics as they were, NaN
weights are never saved, a failed checkpoint write names the file and keeps the old one, and the testing aid that
fakes an overflow names its rank and steps (whole runs: integration/test_faults.py)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Dict

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet.engine import checkpoint as ckpt_module
from mindcv_shufflenet.engine.checkpoint import (
    CheckpointManager,
    CheckpointWriteError,
    NonFiniteWeightsError,
    atomic_save,
)
from mindcv_shufflenet.engine.faults import OVERFLOW_ENV, overflow_steps
from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.engine.train_step import TrainStep
from mindcv_shufflenet.models.weights import read_checkpoint
from mindcv_shufflenet.runtime import RunError

MODEL = "shufflenet_v2_x0_5"


class BNNet(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Dense(6, 4)
        self.bn = nn.BatchNorm1d(4)
        self.out = nn.Dense(4, 3)

    def construct(self, x):
        return self.out(self.bn(self.fc(x)))


def _bn_step(lr: float = 0.1):
    ms.set_seed(0)
    net = BNNet()
    step = TrainStep(net, create_loss("CE"), nn.Momentum(net.trainable_params(), learning_rate=lr, momentum=0.9))
    step.set_train(True)
    return net, step


def _state(net: nn.Cell) -> Dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


def test_a_non_finite_step_leaves_weights_and_batchnorm_statistics_as_they_were():
    net, step = _bn_step()
    rng = np.random.default_rng(0)
    labels = ms.Tensor(rng.integers(0, 3, 8).astype(np.int32))
    good = rng.normal(size=(8, 6)).astype(np.float32)
    step(ms.Tensor(good), labels)
    before = _state(net)
    bad = good.copy()
    bad[3, 2] = np.nan
    loss, finite, _ = step(ms.Tensor(bad), labels)
    assert not bool(finite.asnumpy())
    after = _state(net)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    step(ms.Tensor(good), labels)  # and a good step moves them again
    moved = _state(net)
    assert not np.array_equal(moved["bn.moving_mean"], before["bn.moving_mean"])
    assert all(np.isfinite(v).all() for v in moved.values())


def test_the_batchnorm_scratch_copy_is_not_saved_and_not_needed_to_resume(tmp_path):
    net, step = _bn_step()
    atomic_save(step, tmp_path / "state.ckpt", {"epoch": 1})
    names = set(read_checkpoint(tmp_path / "state.ckpt"))
    assert "bn.moving_mean" in names and not any(n.startswith("bn_backup.") for n in names)
    _, other = _bn_step(lr=0.5)
    ckpt_module.load_training_state(other, tmp_path / "state.ckpt")  # no "missing" error for the scratch copy


def test_weights_holding_nan_are_never_saved(tmp_path):
    net, step = _bn_step()
    manager = CheckpointManager(tmp_path, MODEL)
    manager.save_epoch(step, net, 1, 10, {"best_top1": -1.0, "best_epoch": -1})
    first = manager.last_path.read_bytes()
    weight = net.fc.weight
    weight.set_data(ms.Tensor(np.full(weight.shape, np.inf, np.float32)))
    with pytest.raises(NonFiniteWeightsError, match=r"not saving epoch 2: .* hold NaN/Inf .* lower lr") as err:
        manager.save_epoch(step, net, 2, 10, {"best_top1": -1.0, "best_epoch": -1})
    assert isinstance(err.value, RunError)  # the command line shows it as one "error:" line, exit 1
    with pytest.raises(NonFiniteWeightsError, match="not saving the best weights"):
        manager.save_best(list(net.get_parameters()), {"epoch": 2})
    assert not manager.epoch_path(2, 10).exists() and not manager.best_path.exists()
    assert manager.last_path.read_bytes() == first


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     OSError(errno.EIO, "Input/output error"),
                                     RuntimeError("Failed to save the checkpoint file")])
def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, failure):
    net, step = _bn_step()
    manager = CheckpointManager(tmp_path, MODEL)
    manager.save_epoch(step, net, 1, 10, {"best_top1": -1.0, "best_epoch": -1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_save = ms.save_checkpoint

    def save_half_then_fail(obj, name, **kwargs):
        real_save(obj, name, **kwargs)
        Path(name).write_bytes(Path(name).read_bytes()[:100])  # what a full disk leaves
        raise failure

    monkeypatch.setattr(ckpt_module.ms, "save_checkpoint", save_half_then_fail)
    with pytest.raises(CheckpointWriteError) as err:
        manager.save_epoch(step, net, 2, 10, {"best_top1": -1.0, "best_epoch": -1})
    message = str(err.value)
    assert message.startswith(f"cannot write checkpoint {manager.epoch_path(2, 10)}: ")
    assert "--resume auto" in message and "the checkpoints saved before are intact" in message
    assert isinstance(err.value, RunError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing changed


def test_overflow_testing_aid_names_rank_and_steps(monkeypatch):
    monkeypatch.setenv(OVERFLOW_ENV, "1:3,7")
    assert overflow_steps(1) == {3, 7} and overflow_steps(0) == set()
    monkeypatch.setenv(OVERFLOW_ENV, "*:2")
    assert overflow_steps(0) == {2} == overflow_steps(5)
    monkeypatch.setenv(OVERFLOW_ENV, "0:x")
    with pytest.raises(ValueError, match=OVERFLOW_ENV):
        overflow_steps(0)
