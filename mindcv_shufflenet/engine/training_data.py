"""What a training run knows of its data (built by the trainer from a folder, or by ``synthetic``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..data.datasets import TrainData


@dataclass
class TrainingData:
    """What the run knows of its data: classes, the epoch's shape, and how to build an epoch."""
    classes: list
    num_classes: int
    first: TrainData  # epoch 1's data (also read for the step count and the skipped files)
    epoch_data: Callable[[int], TrainData]  # 0-based epoch -> that epoch's data
    steps_per_epoch: int  # a whole number of accumulation windows
    updates_per_epoch: int
    eval_data: Optional[object]
