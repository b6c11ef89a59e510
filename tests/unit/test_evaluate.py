"""Evaluation with images whose logits are not finite (float16 overflow under amp O2/O3): counted, reported in
one line with what to do, the other metrics computed without them, and no numpy warning."""

from __future__ import annotations

import math
import warnings
from typing import List

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet.engine.evaluate import evaluate


class PassThrough(nn.Cell):
    """The "images" are the logits themselves."""

    def construct(self, x):
        return x


class Batches:
    """The part of a MindSpore dataset that ``evaluate`` uses."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def get_dataset_size(self) -> int:
        return len(self.batches)

    def create_tuple_iterator(self, num_epochs: int = 1):
        return iter([(ms.Tensor(x), ms.Tensor(y)) for x, y in self.batches])


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def _run(batches) -> tuple:
    lines: List[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        result = evaluate(PassThrough(), Batches(batches), log=lines.append)
    return result, lines


def test_images_with_non_finite_logits_are_counted_as_wrong_and_left_out_of_the_loss():
    rng = np.random.default_rng(0)
    finite = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1], np.int32)
    finite[np.arange(6), labels] += np.array([3, 3, 3, 3, -3, -3], np.float32)  # 4 right, 2 wrong
    bad = np.array([[np.nan, 0, 0, 0], [np.inf, 1, 0, 0], [0, -np.inf, 2, 1]], np.float32)
    bad_labels = np.array([0, 0, 2], np.int32)  # each would be "right" if its row were trusted
    batches = [(np.concatenate([finite[:3], bad[:2]]), np.concatenate([labels[:3], bad_labels[:2]])),
               (np.concatenate([bad[2:], finite[3:]]), np.concatenate([bad_labels[2:], labels[3:]]))]
    result, lines = _run(batches)
    assert result.images == 9 and result.nonfinite == 3
    assert result.top1 == pytest.approx(100 * 4 / 9)
    assert result.loss == pytest.approx(_cross_entropy(finite.astype(np.float64), labels))
    assert lines == ["warning: 3 of 9 images gave non-finite logits (NaN/Inf): they count as wrong in top-1/top-5 "
                     "and are left out of the loss; top-1 over the other 6: 66.67%. With val_amp_level O2/O3 this is "
                     "float16 overflow: on the CPU evaluate in float32 (val_amp_level O0)"]


def test_all_logits_non_finite_gives_zero_accuracy_and_no_loss():
    batches = [(np.full((2, 3), np.inf, np.float32), np.array([0, 1], np.int32))]
    result, lines = _run(batches)
    assert result.nonfinite == 2 and result.top1 == 0 and result.top5 == 0 and math.isnan(result.loss)
    assert len(lines) == 1 and lines[0].startswith("warning: 2 of 2 images gave non-finite logits")
    assert "top-1 over the other" not in lines[0]


def test_finite_logits_give_no_warning():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]], np.float32)
    labels = np.array([0, 1, 1], np.int32)
    result, lines = _run([(logits, labels)])
    assert lines == [] and result.nonfinite == 0
    assert result.top1 == pytest.approx(200 / 3) and result.top5 == 100
    assert result.loss == pytest.approx(_cross_entropy(logits.astype(np.float64), labels))
