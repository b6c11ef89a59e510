"""Per-image transforms: MindCV's evaluation preprocessing, and training augmentation with MindCV's keys
(random resized crop, flips, colour jitter or auto augment, normalize)."""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mindspore.dataset import vision

from ..constants import (
    CHANNEL_ORDERS,
    CROP_PCT,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATION,
    INTERPOLATIONS,
    choose,
)
from .checks import check_int, check_nonnegative, check_pair, check_prob, is_finite_number

# MindSpore's resize mode for each interpolation name.
_INTER = {name: getattr(vision.Inter, name.upper()) for name in INTERPOLATIONS}

# MindCV's training-augmentation keys and their defaults (mindcv/data/transforms_factory.py, loader.py).
AUGMENT_DEFAULTS: Dict[str, Any] = {
    "scale": (0.08, 1.0),
    "ratio": (0.75, 1.333),
    "hflip": 0.5,
    "vflip": 0.0,
    "color_jitter": None,
    "interpolation": INTERPOLATION,
    "auto_augment": None,
    "re_prob": 0.0,
    "re_scale": (0.02, 0.33),
    "re_ratio": (0.3, 3.3),
    "re_value": 0,
    "re_max_attempts": 10,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "mixup": 0.0,
    "cutmix": 0.0,
    "cutmix_prob": 1.0,
    "label_smoothing": 0.0,
}
AUTO_AUGMENT_FORMS = ("autoaug[-mstd<float>]", "autoaugr[-mstd<float>]",
                      "randaug[-m<int>][-n<int>][-mstd<float>][-mmax<int>][-inc<0|1>]", "trivialaugwide[-m<int>]")


def eval_transforms(image_size: int = IMAGE_SIZE, crop_pct: float = CROP_PCT, interpolation: str = INTERPOLATION,
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    channel_order: str = "RGB") -> List:
    """Decode, resize the short side to ``floor(image_size / crop_pct)`` (256 for 224), center-crop
    ``image_size``, normalize, HWC -> CHW: MindCV's evaluation pipeline. With ``channel_order="BGR"`` the
    channels are reversed before normalizing (``mean`` and ``std`` are then in B, G, R order)."""
    inter = _INTER[choose("interpolation", interpolation, INTERPOLATIONS)]
    channel_order = choose("channel_order", channel_order, CHANNEL_ORDERS)
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    resize = int(math.floor(image_size / crop_pct))
    ops: List[Any] = [vision.Decode(), vision.Resize(resize, inter), vision.CenterCrop(image_size)]
    if channel_order == "BGR":
        ops.append(vision.ConvertColor(vision.ConvertMode.COLOR_RGB2BGR))
    return ops + [vision.Normalize(mean=list(mean), std=list(std)), vision.HWC2CHW()]


def check_mean_std(mean: Any, std: Any) -> Tuple[List[float], List[float]]:
    """Normalization statistics as lists of floats: one per channel of the decoded (RGB) image."""
    for name, value in (("mean", mean), ("std", std)):
        if (not isinstance(value, (list, tuple, np.ndarray)) or len(value) != IMAGE_CHANNELS
                or not all(is_finite_number(v) for v in value)):
            raise ValueError(f"{name} must be {IMAGE_CHANNELS} numbers (R, G, B on the 0-255 scale), got {value!r}")
    if not all(s > 0 for s in std):
        raise ValueError(f"std must be {IMAGE_CHANNELS} numbers > 0, got {std!r}")
    return [float(m) for m in mean], [float(s) for s in std]


def _color_jitter(value: Any) -> Optional[Tuple[float, ...]]:
    """MindCV's color_jitter: a float b means brightness = contrast = saturation = b; 3 or 4 floats add hue."""
    if value is None or (is_finite_number(value) and value == 0):
        return None
    if is_finite_number(value):
        value = (float(value),) * 3
    if (not isinstance(value, (list, tuple)) or len(value) not in (3, 4)
            or not all(is_finite_number(v) and v >= 0 for v in value) or (len(value) == 4 and value[3] > 0.5)):
        raise ValueError(f"color_jitter must be None, a number >= 0, or 3 or 4 numbers >= 0 (brightness, contrast, "
                         f"saturation[, hue <= 0.5]), got {value!r}")
    return tuple(float(v) for v in value)


def _re_value(value: Any) -> Any:
    if is_finite_number(value) or value == "random":
        return value
    if isinstance(value, (list, tuple)) and len(value) == IMAGE_CHANNELS and all(is_finite_number(v) for v in value):
        return np.asarray(value, dtype=np.float32)[:, None, None]
    raise ValueError(f"re_value must be a number, {IMAGE_CHANNELS} numbers (per channel) or 'random', got {value!r}")


# ----------------------------------------------------------------------------------------------- auto augment

def _auto_augment_sections(spec: str, allowed: Dict[str, type]) -> Dict[str, float]:
    """Parse MindCV's '-'-separated '<key><number>' sections; stricter than MindCV, which skips sections
    without a digit silently."""
    values: Dict[str, float] = {}
    for section in spec.split("-")[1:]:
        match = re.fullmatch(r"([a-z]+)(\d.*)", section)
        if not match or match[1] not in allowed:
            raise ValueError(f"auto_augment {spec!r}: cannot parse section {section!r}; valid forms: "
                             f"{', '.join(AUTO_AUGMENT_FORMS)}")
        key, text = match[1], match[2]
        try:
            values[key] = allowed[key](text)
        except ValueError:
            kind = "an integer" if allowed[key] is int else "a number"
            raise ValueError(f"auto_augment {spec!r}: {key} needs {kind}, got {text!r}") from None
    return values


def auto_augment_op(spec: Optional[str], interpolation: str = INTERPOLATION,
                    mean: Sequence[float] = IMAGENET_MEAN) -> Optional[Any]:
    """MindSpore's op for one of MindCV's ``auto_augment`` strings (None, "" or False: none).

    MindCV implements these policies in Python after timm; MindSpore's C++ ops implement torchvision's, so:
    - "autoaug", "autoaugr" -> ``AutoAugment(IMAGENET)``: the same 25 sub-policies, magnitudes on torchvision's
      scale (posterize grows stronger with magnitude, as in "autoaugr").
    - "randaug-m<M>-n<N>" -> ``RandAugment(num_ops=N, magnitude=M, num_magnitude_bins=11)``, so that M is the
      same fraction (M/10) of each op's range as in timm; M is clipped to ``mmax`` (default 10) as in timm.
      Differences: every chosen op is applied (timm: each with p=0.5), the op set is torchvision's (with
      Identity, without Invert), "inc" makes no difference, weighted op choice ("w") is not available.
    - "trivialaugwide[-m<M>]" -> ``TrivialAugmentWide(num_magnitude_bins=M + 1)`` (default M = 31: 32 levels).
    - "mstd" (magnitude noise) is parsed but not applied: MindSpore's ops have fixed magnitude levels. (MindCV
      itself ignores the value given: its default of 0.5 is set first and ``setdefault`` keeps it.)
    Fill value for geometric ops: the mean colour, as MindCV passes it.
    """
    if spec is None or spec is False or spec == "":
        return None
    if not isinstance(spec, str):
        raise ValueError(f"auto_augment must be None or a string, got {spec!r}; valid forms: "
                         f"{', '.join(AUTO_AUGMENT_FORMS)}")
    inter = _INTER[choose("interpolation", interpolation, INTERPOLATIONS)]
    fill = tuple(min(255, int(round(m))) for m in mean)
    name = spec.split("-")[0]
    if name in ("autoaug", "autoaugr"):
        _auto_augment_sections(spec, {"mstd": float})
        return vision.AutoAugment(vision.AutoAugmentPolicy.IMAGENET, interpolation=inter, fill_value=fill)
    if name == "randaug":
        values = _auto_augment_sections(spec, {"m": int, "n": int, "mstd": float, "mmax": int, "inc": int, "w": int})
        if "w" in values:
            raise ValueError(f"auto_augment {spec!r}: weighted op choice (w) is not available with MindSpore's "
                             f"RandAugment; leave it out")
        magnitude = max(0, min(int(values.get("m", 10)), int(values.get("mmax", 10))))
        if magnitude > 10:
            raise ValueError(f"auto_augment {spec!r}: magnitudes above 10 (timm's maximum) are not available with "
                             f"MindSpore's RandAugment")
        num_ops = int(values.get("n", 2))
        if num_ops < 1:
            raise ValueError(f"auto_augment {spec!r}: n must be >= 1")
        return vision.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11,
                                  interpolation=inter, fill_value=fill)
    if name == "trivialaugwide":
        values = _auto_augment_sections(spec, {"m": int})
        levels = int(values.get("m", 31))
        if levels < 1:
            raise ValueError(f"auto_augment {spec!r}: m must be >= 1")
        return vision.TrivialAugmentWide(num_magnitude_bins=levels + 1, interpolation=inter, fill_value=fill)
    raise ValueError(f"unknown auto_augment {spec!r}: valid forms are {', '.join(AUTO_AUGMENT_FORMS)} "
                     f"(MindCV's '3a' and 'augmix' have no MindSpore op)")


# ----------------------------------------------------------------------------------------------- training

def check_augment(augment: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown augmentation option(s) {', '.join(unknown)}: valid are {', '.join(AUGMENT_DEFAULTS)}")
    a = {**AUGMENT_DEFAULTS, **augment}
    for key in ("scale", "ratio", "re_scale", "re_ratio"):
        a[key] = check_pair(key, a[key])
    for key in ("hflip", "vflip", "re_prob", "cutmix_prob"):
        a[key] = check_prob(key, a[key])
    for key in ("mixup", "cutmix"):
        a[key] = check_nonnegative(key, a[key])
    if not is_finite_number(a["label_smoothing"]) or not 0 <= a["label_smoothing"] < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {a['label_smoothing']!r}")
    a["interpolation"] = choose("interpolation", a["interpolation"], INTERPOLATIONS)
    a["color_jitter"] = _color_jitter(a["color_jitter"])
    a["mean"], a["std"] = check_mean_std(a["mean"], a["std"])
    a["re_value"] = _re_value(a["re_value"])
    a["re_max_attempts"] = check_int("re_max_attempts", a["re_max_attempts"], 1)
    return a


def train_transforms(image_size: int = IMAGE_SIZE, **augment: Any) -> List:
    """Per-image training ops in MindCV's order: random resized crop + decode, flips, then auto-augment or
    (only without it, as in MindCV) colour jitter, normalize, HWC -> CHW. Random erasing, mixup and cutmix
    are per-batch steps of :func:`create_train_dataset`. ``augment`` takes the keys of ``AUGMENT_DEFAULTS``."""
    a = check_augment(augment)
    check_int("image_size", image_size, 1)
    inter = _INTER[a["interpolation"]]
    ops: List[Any] = [vision.RandomCropDecodeResize(image_size, scale=a["scale"], ratio=a["ratio"],
                                                    interpolation=inter, max_attempts=10)]
    if a["hflip"] > 0:
        ops.append(vision.RandomHorizontalFlip(prob=a["hflip"]))
    if a["vflip"] > 0:
        ops.append(vision.RandomVerticalFlip(prob=a["vflip"]))
    auto = auto_augment_op(a["auto_augment"], a["interpolation"], a["mean"])
    if auto is not None:
        ops.append(auto)
    elif a["color_jitter"] is not None:
        ops.append(vision.RandomColorAdjust(*a["color_jitter"]))
    ops += [vision.Normalize(mean=a["mean"], std=a["std"]), vision.HWC2CHW()]
    return ops
