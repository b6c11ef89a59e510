"""Datasets and transforms."""

from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, create_eval_dataset, eval_transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "create_eval_dataset", "eval_transforms"]
