"""ImageNet-style folders (``root/<split>/<class>/<image>``) and MindCV's evaluation preprocessing."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Optional, Sequence

import mindspore.dataset as ds
from mindspore.dataset import vision

# On the 0-255 scale, as MindCV applies them.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
INTERPOLATIONS = {
    "bilinear": vision.Inter.BILINEAR,
    "bicubic": vision.Inter.BICUBIC,
    "nearest": vision.Inter.NEAREST,
    "area": vision.Inter.AREA,
}


def eval_transforms(image_size: int = 224, crop_pct: float = 0.875, interpolation: str = "bilinear",
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> List:
    """Decode, resize the short side to ``floor(image_size / crop_pct)`` (256 for 224), center-crop
    ``image_size``, normalize, HWC -> CHW: MindCV's evaluation pipeline."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}")
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    resize = int(math.floor(image_size / crop_pct))
    return [
        vision.Decode(),
        vision.Resize(resize, INTERPOLATIONS[interpolation]),
        vision.CenterCrop(image_size),
        vision.Normalize(mean=list(mean), std=list(std)),
        vision.HWC2CHW(),
    ]


def create_eval_dataset(data_dir: str, split: str = "val", batch_size: int = 64, image_size: int = 224,
                        crop_pct: float = 0.875, interpolation: str = "bilinear",
                        num_parallel_workers: Optional[int] = None,
                        num_classes: Optional[int] = None) -> ds.Dataset:
    """Batches of (image float32 [B, 3, H, W], label int32) from ``data_dir/split`` (``split=""``:
    ``data_dir`` itself), in file order, last batch kept. Labels are the class folders' indices in
    sorted order, as in MindCV and torchvision; ``num_classes`` is checked against their number."""
    folder = Path(data_dir) / split if split else Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise ValueError(f"{folder} has no class folders: expected {folder}/<class>/<image files>")
    if num_classes is not None and len(classes) > num_classes:
        raise ValueError(f"{folder} has {len(classes)} class folders but the model has num_classes={num_classes}: "
                         f"wrong --data_dir/--val_split, or set --num_classes {len(classes)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # MindSpore rejects more workers than cores.
    workers = max(1, min(num_parallel_workers or os.cpu_count() or 1, os.cpu_count() or 1))
    dataset = ds.ImageFolderDataset(str(folder), shuffle=False, num_parallel_workers=workers,
                                    class_indexing={name: i for i, name in enumerate(classes)})
    dataset = dataset.map(operations=eval_transforms(image_size, crop_pct, interpolation), input_columns="image",
                          num_parallel_workers=workers)
    return dataset.batch(batch_size, drop_remainder=False)
