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

Auxiliary heads (ShuffleNetV2.Large / ExLarge in training return ``(logits, aux_1, aux_2, aux_3)``): MindCV's
``aux_factor`` weighs each auxiliary logits' loss and adds it to the main one (:class:`AuxiliaryLoss`); here
it is one weight for every head, as in MindCV, or one per head (:func:`auxiliary_weights`).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Sequence, Tuple

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


class AuxiliaryLoss(nn.Cell):
    """``loss(logits[0]) + sum_i weights[i] * loss(logits[i + 1])`` for a network that returns auxiliary
    logits after its main ones (in training); a single logits tensor gives ``loss(logits)``."""

    def __init__(self, loss: nn.Cell, weights: Sequence[float]) -> None:
        super().__init__()
        self.loss = loss
        self.weights = tuple(float(w) for w in weights)

    def construct(self, logits, labels: Tensor) -> Tensor:
        if not isinstance(logits, tuple):
            return self.loss(logits, labels)
        total = self.loss(logits[0], labels)
        for i in range(len(self.weights)):
            total = total + self.weights[i] * self.loss(logits[i + 1], labels)
        return total


def auxiliary_weights(aux_factor: Sequence[float], heads: int, model: str = "the model") -> Tuple[float, ...]:
    """The loss weight of each of ``heads`` auxiliary heads from MindCV's ``aux_factor``: one number weighs
    every head (MindCV's meaning; 0: their logits are left out of the loss), or one number per head in the
    order the network returns them (ShuffleNetV2.Large / ExLarge: deepest first; their official recipe is
    ``[0.7, 0.5, 0.3]``).

    Raises:
        ValueError: a weight that is negative or not finite, weights for a model without auxiliary heads,
            or a list whose length is not the number of heads.
    """
    factors = tuple(float(f) for f in aux_factor) or (0.0,)
    if not all(math.isfinite(f) and f >= 0 for f in factors):
        raise ValueError(f"aux_factor must be numbers >= 0, got {list(factors)}")
    if heads == 0:
        if any(factors):
            raise ValueError(f"aux_factor: {model} has no auxiliary heads; set it to 0")
        return ()
    if len(factors) == 1:
        return factors * heads
    if len(factors) != heads:
        raise ValueError(f"aux_factor gives {len(factors)} weights, but {model} has {heads} auxiliary heads: give "
                         f"one weight, or one per head (deepest first)")
    return factors


def create_loss(name: str = "CE", label_smoothing: float = 0.0, reduction: str = "mean",
                aux_weights: Sequence[float] | None = None) -> nn.Cell:
    """A loss Cell by MindCV's name (``loss`` key): ``CE`` or ``BCE`` (case-insensitive).

    Args:
        name: ``CE`` (softmax cross-entropy) or ``BCE`` (sigmoid binary cross-entropy).
        label_smoothing: eps in [0, 1): targets become ``(1 - eps) * y + eps / C``.
        reduction: ``mean`` (MindCV's default), ``sum`` or ``none``.
        aux_weights: for a network with auxiliary heads, each head's loss weight (:func:`auxiliary_weights`);
            the loss then takes the tuple of logits (:class:`AuxiliaryLoss`).

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
    loss = cls(float(label_smoothing), reduction)
    return loss if aux_weights is None else AuxiliaryLoss(loss, aux_weights)
