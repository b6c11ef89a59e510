"""Classification losses with MindCV's names and semantics (``mindcv/loss/loss_factory.py``).

* ``CE``: MindCV's ``CrossEntropySmooth`` is ``mindspore.ops.cross_entropy(..., label_smoothing=eps)``:
  the target distribution is ``(1 - eps) * y + eps / C`` (eps spread over all C classes, the true one
  included: it gets ``1 - eps + eps / C``), for class indices and for soft/one-hot labels alike (soft
  labels from mixup/cutmix are smoothed again). The official ShuffleNet code's
  ``CrossEntropyLabelSmooth`` is the same. Loss ``-sum_c target_c * log_softmax(logits)_c``, averaged
  over the batch.
* ``BCE``: MindCV's ``BinaryCrossEntropySmooth``: sigmoid cross-entropy against ``(1 - eps) * y + eps /
  C``, averaged over batch *and* classes. MindCV requires one-hot labels; class indices are one-hot
  encoded here.

Both compute in float32 whatever the logits' dtype (float16 logits under amp O2/O3 are cast first),
with ``log_softmax`` / a stable softplus rather than ``nn.CrossEntropyLoss``, and run in graph mode.
"""

from __future__ import annotations

import math
from numbers import Real

import mindspore as ms
from mindspore import Tensor, nn, ops

from ..constants import LOSS_REDUCTIONS, LOSSES, choose



class _SmoothedTargets(nn.Cell):
    """Shared part: float32 logits and the smoothed target distribution for index or soft labels."""

    def __init__(self, label_smoothing: float, reduction: str) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.one_hot = ops.OneHot()
        self.on_value = Tensor(1.0, ms.float32)
        self.off_value = Tensor(0.0, ms.float32)

    def targets(self, logits: Tensor, labels: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        if labels.ndim == logits.ndim - 1:
            target = self.one_hot(ops.cast(labels, ms.int32), num_classes, self.on_value, self.off_value)
        else:
            target = ops.cast(labels, ms.float32)
        if self.label_smoothing > 0.0:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        return target

    def reduce(self, per_sample: Tensor) -> Tensor:
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample


class CrossEntropySmooth(_SmoothedTargets):
    """Softmax cross-entropy with label smoothing: ``(logits [B, C], labels int [B] or float [B, C])``
    to the mean (or sum, or per-sample) loss in float32."""

    def construct(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = ops.cast(logits, ms.float32)
        log_probs = ops.log_softmax(logits, -1)
        return self.reduce(-(self.targets(logits, labels) * log_probs).sum(-1))


class BinaryCrossEntropySmooth(_SmoothedTargets):
    """Sigmoid cross-entropy per class with label smoothing, averaged over samples and classes
    (``reduction="none"`` gives [B, C])."""

    def construct(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = ops.cast(logits, ms.float32)
        target = self.targets(logits, labels)
        # log(1 + exp(x)) - x * y, written to stay finite for large |x|.
        per_element = ops.relu(logits) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
        return self.reduce(per_element)


def create_loss(name: str = "CE", label_smoothing: float = 0.0, reduction: str = "mean") -> nn.Cell:
    """A loss Cell by MindCV's name (``loss`` key): ``CE`` or ``BCE`` (case-insensitive).

    Args:
        name: ``CE`` (softmax cross-entropy) or ``BCE`` (sigmoid binary cross-entropy).
        label_smoothing: eps in [0, 1): targets become ``(1 - eps) * y + eps / C``.
        reduction: ``mean`` (MindCV's default), ``sum`` or ``none``.

    Raises:
        ValueError: unknown name (with the closest valid one) or a bad value (naming the key).
    """
    name = choose("loss", name, LOSSES)
    if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, Real)
            or not math.isfinite(label_smoothing) or not 0.0 <= label_smoothing < 1.0):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(LOSS_REDUCTIONS)}, got {reduction!r}")
    cls = CrossEntropySmooth if name == "CE" else BinaryCrossEntropySmooth
    return cls(float(label_smoothing), reduction)
