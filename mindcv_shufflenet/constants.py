"""Every choice list and shared constant, written once: the configuration checks a key against the same
tuple the module implementing it accepts. Nothing here imports MindSpore, so the configuration can be
checked before the framework loads."""

from __future__ import annotations

import difflib
from typing import Any, Sequence

# Images are decoded to 3-channel RGB by the data pipeline, whatever their mode on disk; a model whose
# weights want BGR gets the channels reversed before normalization.
IMAGE_CHANNELS = 3
CHANNEL_ORDERS = ("RGB", "BGR")
# ImageNet's per-channel statistics (R, G, B) on the 0-255 scale, as MindCV applies them.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
# MindCV's image size and evaluation preprocessing: resize the short side to IMAGE_SIZE / CROP_PCT (256),
# center-crop IMAGE_SIZE, bilinear.
IMAGE_SIZE = 224
CROP_PCT = 0.875
INTERPOLATION = "bilinear"
# Padding of the 3x3 stride-2 pools: MindSpore's pad_mode="same" (MindCV) or one on every side (official).
POOL_PADDINGS = ("same", "symmetric")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
WEIGHT_DECAY_FILTERS = ("disable", "auto", "norm_and_bias", "official")
# MindCV's scheduler names (warmup_cosine_decay is its older name of cosine_decay), plus linear_decay.
# MindCV's config.py default for multi_step_decay_milestones.
DEFAULT_MILESTONES = (30, 60, 90)
SCHEDULERS = ("constant", "cosine_decay", "warmup_cosine_decay", "step_decay", "multi_step_decay",
              "exponential_decay", "polynomial_decay", "linear_decay")
LOSSES = ("CE", "BCE")
LOSS_REDUCTIONS = ("mean", "sum", "none")
AMP_LEVELS = ("O0", "O1", "O2", "O3")
DEVICES = ("CPU", "Ascend", "GPU")
MODES = ("graph", "pynative")
JIT_LEVELS = ("O0", "O1", "O2")


def choose(key: str, value: Any, valid: Sequence[str]) -> str:
    """The entry of ``valid`` that ``value`` names, compared case-insensitively; a ValueError naming ``key``,
    the closest valid entry and all of them otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be one of {', '.join(valid)}, got {value!r}")
    wanted = value.strip().lower()
    for choice in valid:
        if wanted == choice.lower():
            return choice
    close = difflib.get_close_matches(value.strip(), valid, n=1, cutoff=0.4)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{key}: unknown value {value!r}{hint}; choose one of {', '.join(valid)}")
