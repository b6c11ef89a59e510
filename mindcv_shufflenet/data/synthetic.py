"""Synthetic training data: one fixed random batch, given to every step, to time the train step alone.

No file is read and no image decoded, so the step's ms/step and img/s in ``train.py``'s log are what the
device can do whatever the input pipeline; compare them with a run on real data (or with
``scripts/benchmark_input.py``) to see whether the pipeline keeps up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import mindspore.dataset as ds
import numpy as np
from mindspore import Tensor

from .checks import check_int
from .datasets import TrainData

# Steps per epoch when num_samples does not say: enough for a steady figure, short enough to wait for.
DEFAULT_STEPS = 100


@dataclass
class SyntheticTrainData(TrainData):
    """A :class:`TrainData` whose every step gets the same batch; its ``dataset`` yields that batch too."""

    image: Optional[Tensor] = None
    label: Optional[Tensor] = None

    def reseed(self) -> None:  # nothing random is drawn after the batch is made
        return None

    def iterator(self, output_numpy: bool = False) -> Iterator[Tuple]:
        batch = (self.image.asnumpy(), self.label.asnumpy()) if output_numpy else (self.image, self.label)
        return iter([batch] * self.steps_per_epoch)


def fixed_batch(batch_size: int, image_size: int, num_classes: int, soft_labels: bool, seed: int
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Images drawn from N(0, 1), like normalized ones (float32 [B, 3, S, S]), and random labels: int32 [B], or
    one-hot float32 [B, num_classes] where mixup / cutmix would give soft labels."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32)
    label = rng.integers(0, num_classes, batch_size).astype(np.int32)
    if soft_labels:
        label = np.eye(num_classes, dtype=np.float32)[label]
    return image, label


def synthetic_train_data(batch_size: int, image_size: int, num_classes: int, *, steps_per_epoch: int = DEFAULT_STEPS,
                         soft_labels: bool = False, seed: int = 0) -> SyntheticTrainData:
    """``steps_per_epoch`` steps of one fixed random batch of ``batch_size`` images of ``image_size`` pixels
    and ``num_classes`` classes (see :func:`fixed_batch`)."""
    for name, value in (("batch_size", batch_size), ("image_size", image_size), ("num_classes", num_classes),
                        ("steps_per_epoch", steps_per_epoch)):
        check_int(name, value, 1)
    image, label = fixed_batch(batch_size, image_size, num_classes, soft_labels, seed)
    dataset = ds.GeneratorDataset(lambda: iter([(image, label)] * steps_per_epoch), ["image", "label"],
                                  shuffle=False)
    return SyntheticTrainData(dataset=dataset, num_classes=num_classes, classes=[str(c) for c in range(num_classes)],
                              steps_per_epoch=steps_per_epoch, images_per_epoch=steps_per_epoch * batch_size,
                              soft_labels=soft_labels, seed=seed, image=Tensor(image), label=Tensor(label))
