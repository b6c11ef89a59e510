"""Datasets and transforms: ImageNet-style folders for training and evaluation, and the demo digits.

One module per concern: ``folders`` (listing, bad-file scan), ``transforms`` (per-image ops), ``batch_augment``
(random erasing, mixup / cutmix), ``sampling`` (per-epoch, per-shard sample order and seeds), ``datasets``."""

from .datasets import TrainData, create_eval_dataset, create_train_dataset
from .folders import find_classes
from .transforms import eval_transforms, train_transforms

__all__ = ["TrainData", "create_eval_dataset", "create_train_dataset", "eval_transforms", "find_classes",
           "train_transforms"]
