"""The names ``engine/trainer.py`` imports from here, before the data pipeline was split into one module per
concern (see ``data/__init__.py``); new code imports from those modules."""

from .datasets import create_eval_dataset, create_train_dataset
from .folders import find_classes, skipped_summary, split_folder

__all__ = ["create_eval_dataset", "create_train_dataset", "find_classes", "skipped_summary", "split_folder"]
