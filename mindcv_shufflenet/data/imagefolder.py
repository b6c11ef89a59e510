"""ImageNet-style folders (``root/<split>/<class>/<image>``): MindCV's evaluation preprocessing, and a training
pipeline with MindCV's augmentation keys whose data for an epoch depends only on (seed, epoch, shard).

Determinism, as measured on MindSpore 2.10 (CPU):
- MindSpore's C++ random ops (RandomCropDecodeResize, flips, RandomColorAdjust, AutoAugment, RandAugment,
  TrivialAugmentWide) repeat exactly for the same ``ds.config`` seed, also with several map workers. Each
  worker has its own random stream, so the result depends on ``num_parallel_workers``: a resumed run must use
  the same worker count to see bit-identical augmentations.
- The seed is read when the iterator is created, not when the pipeline is built (hence ``TrainData.reseed``).
- ``vision.RandomErasing`` is a Python op drawing from the global ``random`` module: with more than one worker
  its draws interleave between threads and differ from run to run. Random erasing, mixup and cutmix are done
  here per batch instead, with a numpy generator keyed by (seed, epoch, shard, batch index).
- Seed 5489 (``std::mt19937::default_seed``) means "unseeded" to MindSpore: every run differs. It is avoided.
- ``ds.config.set_seed`` also reseeds Python's ``random`` and ``numpy.random``; their states are restored here.

Decode (and RandomCropDecodeResize) turn grayscale, palette, grayscale+alpha, RGBA, CMYK and 16-bit PNG
images into 3-channel uint8 RGB (alpha is dropped, as by PIL's ``convert("RGB")``), so no conversion is
needed. WEBP and GIF fail to decode, so they are not in ``IMAGE_EXTENSIONS``.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mindspore.dataset as ds
import numpy as np
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
# torchvision's ImageFolder list, less .webp (MindSpore's Decode cannot read it); matched case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff")

# MindCV's training-augmentation keys and their defaults (mindcv/data/transforms_factory.py, loader.py).
AUGMENT_DEFAULTS: Dict[str, Any] = {
    "scale": (0.08, 1.0),
    "ratio": (0.75, 1.333),
    "hflip": 0.5,
    "vflip": 0.0,
    "color_jitter": None,
    "interpolation": "bilinear",
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
_MT19937_DEFAULT_SEED = 5489


# ----------------------------------------------------------------------------------------------- folders

def find_classes(folder: str | os.PathLike) -> List[str]:
    """The class folder names of an image folder, sorted (their indices are the labels, as in MindCV and
    torchvision). Hidden folders (``.name``) are not classes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder} has no class folders: expected {folder}/<class>/<image files>")
    return classes


def _extension(name: str) -> str:
    # What MindSpore's ImageFolderDataset compares with `extensions`: from the last dot on, case kept.
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


@dataclass(frozen=True)
class _Listing:
    folder: Path
    classes: List[str]
    counts: List[int]          # images per class
    extensions: List[str]      # the exact-case extensions present, for ImageFolderDataset

    @property
    def num_images(self) -> int:
        return sum(self.counts)


def _scan(folder: Path, *, require_every_class: bool) -> _Listing:
    """Count the images of each class folder as ImageFolderDataset will read them (non-recursive, by extension)."""
    classes = find_classes(folder)
    counts, extensions = [], set()
    for name in classes:
        count = 0
        for entry in os.scandir(folder / name):
            ext = _extension(entry.name)
            if ext.lower() not in IMAGE_EXTENSIONS:
                continue
            if not entry.is_file():
                raise ValueError(f"{entry.path} has an image file's extension but is not a file: rename or remove it")
            count += 1
            extensions.add(ext)
        if count == 0 and require_every_class:
            raise ValueError(f"class folder {folder / name} has no images (accepted extensions, any case: "
                             f"{' '.join(IMAGE_EXTENSIONS)})")
        counts.append(count)
    if not sum(counts):
        shown = f"{classes[:5]}{'...' if len(classes) > 5 else ''}"
        raise ValueError(f"{folder} has no images in its class folders {shown} "
                         f"(accepted extensions, any case: {' '.join(IMAGE_EXTENSIONS)})")
    return _Listing(folder, classes, counts, sorted(extensions))


def _image_folder_dataset(listing: _Listing, indices: Sequence[int], workers: int) -> ds.ImageFolderDataset:
    """ImageFolderDataset reading ``indices`` (positions in its sorted class-then-file order) in that order."""
    dataset = ds.ImageFolderDataset(str(listing.folder), sampler=ds.SubsetSampler([int(i) for i in indices]),
                                    num_parallel_workers=workers, extensions=listing.extensions,
                                    class_indexing={name: i for i, name in enumerate(listing.classes)})
    return dataset


def _check_image_count(listing: _Listing, workers: int) -> None:
    found = ds.ImageFolderDataset(str(listing.folder), shuffle=False, num_parallel_workers=workers,
                                  extensions=listing.extensions,
                                  class_indexing={name: i for i, name in enumerate(listing.classes)}).get_dataset_size()
    if found != listing.num_images:  # would shift every sample index: refuse rather than train on the wrong images
        raise RuntimeError(f"MindSpore's ImageFolderDataset sees {found} images in {listing.folder}, "
                           f"this module counted {listing.num_images}")


def _workers(num_parallel_workers: Optional[int]) -> int:
    # MindSpore rejects more workers than cores.
    cores = os.cpu_count() or 1
    return max(1, min(int(num_parallel_workers or cores), cores))


def _split_folder(data_dir: str, split: str) -> Path:
    return Path(data_dir) / split if split else Path(data_dir)


def _check_num_classes(listing: _Listing, num_classes: Optional[int], option: str) -> int:
    if num_classes is None:
        return len(listing.classes)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if len(listing.classes) > num_classes:
        raise ValueError(f"{listing.folder} has {len(listing.classes)} class folders but the model has "
                         f"num_classes={num_classes}: wrong --data_dir/{option}, or set --num_classes "
                         f"{len(listing.classes)}")
    return num_classes


# ----------------------------------------------------------------------------------------------- evaluation

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
                        num_classes: Optional[int] = None, *, num_shards: int = 1, shard_id: int = 0,
                        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> ds.Dataset:
    """Batches of (image float32 [B, 3, H, W], label int32) from ``data_dir/split`` (``split=""``:
    ``data_dir`` itself), in file order, last batch kept. Labels are the class folders' indices in
    sorted order, as in MindCV and torchvision; ``num_classes`` is checked against their number.
    With ``num_shards > 1`` shard ``shard_id`` gets images ``shard_id::num_shards`` of the file order, without
    padding, so shards can differ by one image: sum the counts over shards for exact metrics."""
    folder = _split_folder(data_dir, split)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_shards(num_shards, shard_id)
    mean, std = _check_mean_std(mean, std)
    listing = _scan(folder, require_every_class=False)
    _check_num_classes(listing, num_classes, "--val_split")
    workers = _workers(num_parallel_workers)
    _check_image_count(listing, workers)
    dataset = _image_folder_dataset(listing, range(shard_id, listing.num_images, num_shards), workers)
    dataset = dataset.map(operations=eval_transforms(image_size, crop_pct, interpolation, mean, std),
                          input_columns="image", num_parallel_workers=workers)
    return dataset.batch(batch_size, drop_remainder=False)


# ----------------------------------------------------------------------------------------------- validation

def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(name: str, value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_nonnegative(name: str, value: Any) -> float:
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_pair(name: str, value: Any) -> Tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_number(v) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ValueError(f"{name} must be a pair (min, max) with 0 < min <= max, got {value!r}")
    return float(value[0]), float(value[1])


def _check_shards(num_shards: Any, shard_id: Any) -> None:
    _check_int("num_shards", num_shards, 1)
    if isinstance(shard_id, bool) or not isinstance(shard_id, (int, np.integer)) or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be an integer in [0, num_shards - 1] = [0, {num_shards - 1}], "
                         f"got {shard_id!r}")


def _check_mean_std(mean: Any, std: Any) -> Tuple[List[float], List[float]]:
    for name, value in (("mean", mean), ("std", std)):
        if (not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 3
                or not all(_is_number(v) for v in value)):
            raise ValueError(f"{name} must be 3 numbers (R, G, B on the 0-255 scale), got {value!r}")
    if not all(s > 0 for s in std):
        raise ValueError(f"std must be 3 numbers > 0, got {std!r}")
    return [float(m) for m in mean], [float(s) for s in std]


def _color_jitter(value: Any) -> Optional[Tuple[float, ...]]:
    """MindCV's color_jitter: a float b means brightness = contrast = saturation = b; 3 or 4 floats add hue."""
    if value is None or (_is_number(value) and value == 0):
        return None
    if _is_number(value):
        value = (float(value),) * 3
    if (not isinstance(value, (list, tuple)) or len(value) not in (3, 4)
            or not all(_is_number(v) and v >= 0 for v in value) or (len(value) == 4 and value[3] > 0.5)):
        raise ValueError(f"color_jitter must be None, a number >= 0, or 3 or 4 numbers >= 0 (brightness, contrast, "
                         f"saturation[, hue <= 0.5]), got {value!r}")
    return tuple(float(v) for v in value)


def _re_value(value: Any) -> Any:
    if _is_number(value) or value == "random":
        return value
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value):
        return np.asarray(value, dtype=np.float32)[:, None, None]
    raise ValueError(f"re_value must be a number, 3 numbers (per channel) or 'random', got {value!r}")


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


def auto_augment_op(spec: Optional[str], interpolation: str = "bilinear",
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
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}")
    inter = INTERPOLATIONS[interpolation]
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

def _check_augment(augment: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown augmentation option(s) {', '.join(unknown)}: valid are {', '.join(AUGMENT_DEFAULTS)}")
    a = {**AUGMENT_DEFAULTS, **augment}
    for key in ("scale", "ratio", "re_scale", "re_ratio"):
        a[key] = _check_pair(key, a[key])
    for key in ("hflip", "vflip", "re_prob", "cutmix_prob"):
        a[key] = _check_prob(key, a[key])
    for key in ("mixup", "cutmix"):
        a[key] = _check_nonnegative(key, a[key])
    if not _is_number(a["label_smoothing"]) or not 0 <= a["label_smoothing"] < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {a['label_smoothing']!r}")
    if a["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {a['interpolation']!r}: choose one of {', '.join(INTERPOLATIONS)}")
    a["color_jitter"] = _color_jitter(a["color_jitter"])
    a["mean"], a["std"] = _check_mean_std(a["mean"], a["std"])
    a["re_value"] = _re_value(a["re_value"])
    a["re_max_attempts"] = _check_int("re_max_attempts", a["re_max_attempts"], 1)
    return a


def train_transforms(image_size: int = 224, **augment: Any) -> List:
    """Per-image training ops in MindCV's order: random resized crop + decode, flips, then auto-augment or
    (only without it, as in MindCV) colour jitter, normalize, HWC -> CHW. Random erasing, mixup and cutmix
    are per-batch steps of :func:`create_train_dataset`. ``augment`` takes the keys of ``AUGMENT_DEFAULTS``."""
    a = _check_augment(augment)
    _check_int("image_size", image_size, 1)
    inter = INTERPOLATIONS[a["interpolation"]]
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


def train_sample_indices(num_images: int, *, epoch: int = 0, seed: int = 42, num_shards: int = 1,
                         shard_id: int = 0, shuffle: bool = True, num_samples: Optional[int] = None,
                         aug_repeats: int = 0) -> np.ndarray:
    """The image indices shard ``shard_id`` reads in epoch ``epoch``, a function of its arguments only.

    A permutation from ``np.random.default_rng([seed, epoch])`` (file order without ``shuffle``), cut to the
    first ``num_samples``; then either padded by wrapping around to a multiple of ``num_shards`` and strided
    (torch's DistributedSampler), or, with ``aug_repeats = R > 0``, each index repeated R times, padded, strided
    and cut to ``ceil(n / num_shards)`` (MindCV's/timm's RepeatAugSampler: the epoch keeps its length and the R
    copies of an image land on different shards). Every shard gets ``ceil(n / num_shards)`` indices."""
    _check_int("num_images", num_images, 1)
    _check_int("epoch", epoch, 0)
    _check_int("seed", seed, 0)
    _check_shards(num_shards, shard_id)
    _check_int("aug_repeats", aug_repeats, 0)
    n = num_images if num_samples is None else min(_check_int("num_samples", num_samples, 1), num_images)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(num_images)[:n]
    else:
        order = np.arange(n)
    per_shard = -(-n // num_shards)
    if aug_repeats > 0:
        repeated = np.repeat(order, aug_repeats)
        padded = np.resize(repeated, -(-len(repeated) // num_shards) * num_shards)
        return padded[shard_id::num_shards][:per_shard]
    return np.resize(order, per_shard * num_shards)[shard_id::num_shards]


def _pipeline_seed(seed: int, epoch: int, shard_id: int) -> int:
    value = int(np.random.SeedSequence([seed, epoch, shard_id]).generate_state(1)[0])
    return value + 1 if value == _MT19937_DEFAULT_SEED else value


def _set_dataset_seed(seed: int) -> None:
    """Seed MindSpore's data pipeline without touching the caller's ``random`` / ``numpy.random`` streams."""
    py_state, np_state = random.getstate(), np.random.get_state()
    ds.config.set_seed(seed)
    random.setstate(py_state)
    np.random.set_state(np_state)


class _BatchAugment:
    """Per-batch random erasing (MindSpore's RandomErasing semantics), mixup / cutmix (MindCV's Mixup: timm's
    'batch' mode, switch_prob 0.5, lambda corrected for the clipped box) and soft labels, drawing from a
    generator keyed by (pipeline seed, pass, batch index) so that worker scheduling cannot change the result."""

    def __init__(self, seed: int, num_classes: int, a: Dict[str, Any], soft_labels: bool):
        self.seed, self.num_classes, self.soft_labels = seed, num_classes, soft_labels
        self.re_prob, self.re_scale, self.re_ratio = a["re_prob"], a["re_scale"], a["re_ratio"]
        self.re_value, self.re_max_attempts = a["re_value"], a["re_max_attempts"]
        self.mixup, self.cutmix, self.mix_prob = a["mixup"], a["cutmix"], a["cutmix_prob"]
        self.smoothing = a["label_smoothing"]

    def __call__(self, images: List[np.ndarray], labels: List[np.ndarray], info: Any) -> Tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, info.get_epoch_num(), info.get_batch_num()])
        x = np.stack(images).astype(np.float32, copy=False)
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        if self.re_prob > 0:
            for image in x:
                self._erase(image, rng)
        if not self.soft_labels:
            return x, y.astype(np.int32)
        lam = self._mix(x, rng)
        off = self.smoothing / self.num_classes
        target = np.full((len(y), self.num_classes), off, dtype=np.float64)
        target[np.arange(len(y)), y] = 1.0 - self.smoothing + off
        return x, (lam * target + (1.0 - lam) * target[::-1]).astype(np.float32)

    def _erase(self, image: np.ndarray, rng: np.random.Generator) -> None:
        if not rng.random() < self.re_prob:
            return
        channels, height, width = image.shape
        for _ in range(self.re_max_attempts):
            area = rng.uniform(*self.re_scale) * height * width
            aspect = rng.uniform(*self.re_ratio)
            w = int(round(math.sqrt(area * aspect)))
            h = int(round(w / aspect))
            if h < height and w < width:
                top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                if isinstance(self.re_value, str):  # 'random': per-pixel normal noise
                    value = rng.standard_normal((channels, h, w), dtype=np.float32)
                else:
                    value = self.re_value
                image[:, top:top + h, left:left + w] = value
                return

    def _mix(self, x: np.ndarray, rng: np.random.Generator) -> float:
        """Mix ``x`` in place with its reversed batch; return the weight of the original labels."""
        lam, use_cutmix = 1.0, False
        if rng.random() < self.mix_prob:
            if self.mixup > 0 and self.cutmix > 0:
                use_cutmix = bool(rng.random() < 0.5)
                alpha = self.cutmix if use_cutmix else self.mixup
            elif self.mixup > 0:
                alpha = self.mixup
            else:
                use_cutmix, alpha = True, self.cutmix
            lam = float(rng.beta(alpha, alpha))
        if lam == 1.0:
            return lam
        flipped = x[::-1].copy()
        if use_cutmix:
            height, width = x.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            cut_h, cut_w = int(height * cut), int(width * cut)
            cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
            top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
            left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
            x[:, :, top:bottom, left:right] = flipped[:, :, top:bottom, left:right]
            return 1.0 - float((bottom - top) * (right - left)) / (height * width)
        x *= lam
        x += flipped * (1.0 - lam)
        return lam


@dataclass
class TrainData:
    """One epoch of one shard's training data.

    ``dataset`` yields (image float32 [B, 3, H, W], label): int32 [B], or with ``soft_labels`` float32
    [B, num_classes] mixup/cutmix targets that already include label smoothing (the loss must not smooth them
    again). MindSpore reads the data seed when an iterator is created: create it right away, or call
    :meth:`reseed` (or use :meth:`iterator`) just before, if anything may have called ``ds.config.set_seed`` or
    ``mindspore.set_seed`` in between. Build a new TrainData for each epoch."""

    dataset: ds.Dataset
    num_classes: int
    classes: List[str]
    steps_per_epoch: int
    images_per_epoch: int
    soft_labels: bool
    seed: int  # the data pipeline seed, derived from (seed, epoch, shard_id)

    def reseed(self) -> None:
        """Set the data pipeline seed again (the next iterator created then sees this epoch's augmentations)."""
        _set_dataset_seed(self.seed)

    def iterator(self, output_numpy: bool = False) -> Any:
        """A one-pass tuple iterator over (image, label) batches, seeded for this epoch."""
        self.reseed()
        return self.dataset.create_tuple_iterator(num_epochs=1, output_numpy=output_numpy)


def create_train_dataset(data_dir: str, split: str = "train", *, batch_size: int, image_size: int = 224,
                         epoch: int = 0, seed: int = 42, num_shards: int = 1, shard_id: int = 0,
                         shuffle: bool = True, drop_remainder: bool = True, num_samples: Optional[int] = None,
                         aug_repeats: int = 0, num_classes: Optional[int] = None,
                         num_parallel_workers: Optional[int] = None, **augment: Any) -> TrainData:
    """The training batches of epoch ``epoch`` for shard ``shard_id`` of ``data_dir/split`` (``split=""``:
    ``data_dir`` itself), with MindCV's augmentation keys (``AUGMENT_DEFAULTS``; see :func:`auto_augment_op`).

    The images read and their augmentations depend only on (seed, epoch, shard_id) and the worker count, not on
    what ran before in the process: a run resumed at epoch e sees the data the uninterrupted run saw. Sample
    order: :func:`train_sample_indices`; every shard runs ``steps_per_epoch`` steps. ``mixup`` / ``cutmix`` are
    Beta alphas (0: off); ``cutmix_prob`` is the probability that a batch is mixed at all (MindCV passes it as
    timm's ``prob``), and with both alphas > 0 each mixed batch uses cutmix or mixup with probability 0.5."""
    _check_int("batch_size", batch_size, 1)
    _check_int("image_size", image_size, 1)
    _check_int("epoch", epoch, 0)
    _check_int("seed", seed, 0)
    _check_shards(num_shards, shard_id)
    _check_int("aug_repeats", aug_repeats, 0)
    if num_samples is not None:
        _check_int("num_samples", num_samples, 1)
    a = _check_augment(augment)
    ops = train_transforms(image_size, **augment)

    listing = _scan(_split_folder(data_dir, split), require_every_class=True)
    classes_out = _check_num_classes(listing, num_classes, "--train_split")
    workers = _workers(num_parallel_workers)
    _check_image_count(listing, workers)
    indices = train_sample_indices(listing.num_images, epoch=epoch, seed=seed, num_shards=num_shards,
                                   shard_id=shard_id, shuffle=shuffle, num_samples=num_samples,
                                   aug_repeats=aug_repeats)
    steps = len(indices) // batch_size if drop_remainder else -(-len(indices) // batch_size)
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is more than the {len(indices)} images each shard reads per epoch "
                         f"from {listing.folder}: lower batch_size or set drop_remainder=False")
    soft_labels = a["mixup"] > 0 or a["cutmix"] > 0

    pipeline_seed = _pipeline_seed(seed, epoch, shard_id)
    _set_dataset_seed(pipeline_seed)
    dataset = _image_folder_dataset(listing, indices, workers)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    if soft_labels or a["re_prob"] > 0:
        batch_augment = _BatchAugment(pipeline_seed, classes_out, a, soft_labels)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers,
                                per_batch_map=batch_augment, input_columns=["image", "label"])
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers)
    return TrainData(dataset=dataset, num_classes=classes_out, classes=listing.classes, steps_per_epoch=steps,
                     images_per_epoch=steps * batch_size if drop_remainder else len(indices),
                     soft_labels=soft_labels, seed=pipeline_seed)
