"""Which images each shard reads in each epoch, and the data pipeline's seed: both functions of
(seed, epoch, shard) only, so that a resumed run sees the data of the uninterrupted one.

Determinism, as measured on MindSpore 2.10 (CPU):
- MindSpore's C++ random ops (RandomCropDecodeResize, flips, RandomColorAdjust, AutoAugment, RandAugment,
  TrivialAugmentWide) repeat exactly for the same ``ds.config`` seed, also with several map workers. Each
  worker has its own random stream, so the result depends on ``num_parallel_workers``: a resumed run must use
  the same worker count to see bit-identical augmentations.
- The seed is read when the iterator is created, not when the pipeline is built (hence ``TrainData.reseed``).
- Seed 5489 (``std::mt19937::default_seed``) means "unseeded" to MindSpore: every run differs. It is avoided.
- ``ds.config.set_seed`` also reseeds Python's ``random`` and ``numpy.random``; their states are restored here.
"""

from __future__ import annotations

import random
from typing import Optional

import mindspore.dataset as ds
import numpy as np

from .checks import check_int, check_shards

_MT19937_DEFAULT_SEED = 5489


def train_sample_indices(num_images: int, *, epoch: int = 0, seed: int = 42, num_shards: int = 1,
                         shard_id: int = 0, shuffle: bool = True, num_samples: Optional[int] = None,
                         aug_repeats: int = 0) -> np.ndarray:
    """The image indices shard ``shard_id`` reads in epoch ``epoch``, a function of its arguments only.

    A permutation from ``np.random.default_rng([seed, epoch])`` (file order without ``shuffle``), cut to the
    first ``num_samples``; then either padded by wrapping around to a multiple of ``num_shards`` and strided
    (torch's DistributedSampler), or, with ``aug_repeats = R > 0``, each index repeated R times, padded, strided
    and cut to ``ceil(n / num_shards)`` (MindCV's/timm's RepeatAugSampler: the epoch keeps its length and the R
    copies of an image land on different shards). Every shard gets ``ceil(n / num_shards)`` indices."""
    check_int("num_images", num_images, 1)
    check_int("epoch", epoch, 0)
    check_int("seed", seed, 0)
    check_shards(num_shards, shard_id)
    check_int("aug_repeats", aug_repeats, 0)
    n = num_images if num_samples is None else min(check_int("num_samples", num_samples, 1), num_images)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(num_images)[:n]
    else:
        order = np.arange(n)
    per_shard = -(-n // num_shards)
    if aug_repeats > 0:
        repeated = np.repeat(order, aug_repeats)
        padded = np.resize(repeated, -(-len(repeated) // num_shards) * num_shards)
        return padded[shard_id::num_shards][:per_shard]
    return np.resize(order, per_shard * num_shards)[shard_id::num_shards]


def pipeline_seed(seed: int, epoch: int, shard_id: int) -> int:
    value = int(np.random.SeedSequence([seed, epoch, shard_id]).generate_state(1)[0])
    return value + 1 if value == _MT19937_DEFAULT_SEED else value


def set_dataset_seed(seed: int) -> None:
    """Seed MindSpore's data pipeline without touching the caller's ``random`` / ``numpy.random`` streams."""
    py_state, np_state = random.getstate(), np.random.get_state()
    ds.config.set_seed(seed)
    random.setstate(py_state)
    np.random.set_state(np_state)


class EpochsSampler(ds.Sampler):
    """The positions of epochs ``first_epoch .. first_epoch + num_epochs - 1`` one after the other, for one
    dataset that serves several epochs (dataset sinking: one device queue for the run).

    Epoch ``e`` is ``positions[train_sample_indices(..., epoch=e)]`` cut to ``per_epoch`` (whole batches), so
    each epoch's order is the one a per-epoch dataset would read. Generated lazily, an epoch at a time: a
    300-epoch ImageNet run would otherwise hold ~50 M indices per rank.
    """

    def __init__(self, positions: np.ndarray, *, first_epoch: int, num_epochs: int, per_epoch: int,
                 **sample_options) -> None:
        check_int("num_epochs", num_epochs, 1)
        check_int("per_epoch", per_epoch, 1)
        super().__init__(num_samples=num_epochs * per_epoch)
        self.positions = np.asarray(positions, np.int64)
        self.epochs = range(first_epoch, first_epoch + num_epochs)
        self.per_epoch = per_epoch
        self.sample_options = sample_options

    def epoch_positions(self, epoch: int) -> np.ndarray:
        order = train_sample_indices(len(self.positions), epoch=epoch, **self.sample_options)
        return self.positions[order][:self.per_epoch]

    def __iter__(self):
        for epoch in self.epochs:
            yield from self.epoch_positions(epoch).tolist()
