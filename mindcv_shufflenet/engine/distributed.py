"""What data parallel needs beyond the gradient all-reduce: summing evaluation counts across ranks and
averaging BatchNorm statistics (and their EMA copies), so that every rank (and the checkpoint rank 0 writes)
holds one model."""

from __future__ import annotations

from typing import Callable, List

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from .train_step import SCRATCH_PREFIXES


class _AllReduceSum(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)


def make_all_reduce() -> Callable[[np.ndarray], np.ndarray]:
    """``f(array) -> sum of that array over all ranks`` (float32 on the wire)."""
    cell = _AllReduceSum()

    def all_reduce(values: np.ndarray) -> np.ndarray:
        out = cell(Tensor(np.asarray(values, np.float32))).asnumpy()
        return out.astype(np.asarray(values).dtype)

    return all_reduce


def _kept(cell: nn.Cell) -> List[ms.Parameter]:
    """The cell's parameters less the train step's scratch ones (which differ between ranks by design)."""
    return [p for p in cell.get_parameters() if not p.name.startswith(SCRATCH_PREFIXES)]


def batchnorm_statistics(cell: nn.Cell) -> List[ms.Parameter]:
    """The moving mean / variance of every BatchNorm (not trained, so not averaged by the optimizer); given the
    train step, their EMA copies too."""
    return [p for p in _kept(cell) if p.name.endswith(("moving_mean", "moving_variance"))]


def average_batchnorm_statistics(network: nn.Cell, all_reduce: Callable[[np.ndarray], np.ndarray],
                                 group_size: int) -> None:
    """Replace each rank's BatchNorm statistics by their mean over ranks (one all-reduce in all)."""
    stats = batchnorm_statistics(network)
    if not stats:
        return
    flat = np.concatenate([p.asnumpy().ravel() for p in stats])
    mean = all_reduce(flat) / group_size
    offset = 0
    for p in stats:
        size = int(np.prod(p.shape))
        p.set_data(Tensor(mean[offset:offset + size].reshape(p.shape), p.dtype))
        offset += size


def parameters_agree(cell: nn.Cell, all_reduce: Callable[[np.ndarray], np.ndarray], group_size: int) -> bool:
    """True when every rank holds the same parameters (compared through per-parameter sums); given the train
    step, that covers optimizer slots, EMA, loss scale and step counters too."""
    sums = np.array([float(np.sum(p.asnumpy(), dtype=np.float64)) for p in _kept(cell)])
    mean = all_reduce(sums) / group_size
    return bool(np.allclose(mean, sums, rtol=1e-5, atol=1e-6))
