"""``synthetic_data: true``: the training run's data replaced by one fixed random batch per step (see
:mod:`..data.synthetic`), so that the log's ms/step and img/s are the train step's alone."""

from __future__ import annotations

from typing import Callable

from .. import runtime
from ..config import Config, ConfigError
from ..data.synthetic import DEFAULT_STEPS, synthetic_train_data
from .training_data import TrainingData

# The classes of the synthetic batch when num_classes is not given: ImageNet's, as the recipes train.
DEFAULT_CLASSES = 1000


def training_data(cfg: Config, dist: runtime.DistInfo, console: Callable[[str], None]):
    """The run's :class:`~.trainer.TrainingData` for ``synthetic_data: true``: ``num_samples // batch_size`` steps
    per epoch (default 100) of one batch drawn from the seed and rank, ``num_classes`` classes (default 1000),
    no validation. Nothing is read from ``data_dir``."""
    if cfg.dataset_sink_mode and runtime.current_device() == "Ascend":
        raise ConfigError("synthetic_data feeds its batch step by step: add --dataset_sink_mode false")
    steps = cfg.num_samples // cfg.batch_size if cfg.num_samples else DEFAULT_STEPS
    accumulation = cfg.gradient_accumulation_steps
    if steps < accumulation:
        raise ConfigError(f"synthetic_data: {steps} step(s) per epoch (num_samples // batch_size) are fewer than "
                          f"gradient_accumulation_steps={accumulation}: raise num_samples")
    steps -= steps % accumulation
    num_classes = cfg.num_classes or DEFAULT_CLASSES
    data = synthetic_train_data(cfg.batch_size, cfg.image_resize, num_classes, steps_per_epoch=steps,
                                soft_labels=cfg.mixup > 0 or cfg.cutmix > 0, seed=cfg.seed + dist.rank)
    console(f"synthetic data: one fixed random batch of {cfg.batch_size} x 3 x {cfg.image_resize} x "
            f"{cfg.image_resize}, {num_classes} classes, {steps} steps per epoch; no file is read"
            f"{' and no validation is run' if cfg.val_while_train else ''}")
    return TrainingData(data.classes, num_classes, data, lambda epoch: data, steps, steps // accumulation, None)
