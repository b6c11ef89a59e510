"""Datasets and transforms: ImageNet-style folders for training and evaluation, and the demo digits."""

from .imagefolder import (IMAGENET_MEAN, IMAGENET_STD, TrainData, create_eval_dataset, create_train_dataset,
                          eval_transforms, find_classes, train_transforms)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TrainData", "create_eval_dataset", "create_train_dataset",
           "eval_transforms", "find_classes", "train_transforms"]
