"""What each registered model carries besides its builder, as timm's ``default_cfgs`` and torchvision's
weights enums do: its released checkpoint, the preprocessing its weights expect, its pool padding, and the
figures others published for it. An entry is written next to its builder (``@register_model(ModelInfo(...))``)
and read through ``registry.model_info(name)`` by ``pretrained=True``, the evaluation defaults of
``validate.py`` / ``infer.py`` and the model table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..constants import (
    CHANNEL_ORDERS,
    CROP_PCT,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATION,
    INTERPOLATIONS,
    POOL_PADDINGS,
)

# Where MindCV publishes its ShuffleNet checkpoints (one folder per family below it).
MINDCV_RELEASE_URL = "https://download.mindspore.cn/toolkits/mindcv/shufflenet/"
# Sources shared by the families (each family file names its own papers and official tables).
MINDCV_ACCURACY = "MindCV's model card, Ascend 910, 8 cards"
MINDCV_PARAMS = "MindCV model card, Params(M) (BatchNorm statistics counted)"
MEGVII = "official code, megvii-model/ShuffleNet-Series"


@dataclass(frozen=True)
class ReleasedWeights:
    """A released ImageNet checkpoint."""

    url: str
    sha256_prefix: str  # the first hex digits of the file's SHA-256 (in its name); pretrained=True checks the bytes

    def __post_init__(self) -> None:
        if self.sha256_prefix not in self.file_name:
            raise ValueError(f"{self.url}: its file name does not carry its hash {self.sha256_prefix}")

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def relative_path(self) -> str:
        """Where the file is looked for below ``download.pretrained_dir()``: its folder on the server and its
        name (``shufflenetv2/shufflenet_v2_x1_0-0da4b7fa.ckpt``)."""
        return "/".join(self.url.split("/")[-2:])


def mindcv_release(path: str, sha256_prefix: str) -> ReleasedWeights:
    """A checkpoint below MindCV's release folder, e.g. ``mindcv_release("shufflenetv2/x.ckpt", "8c841061")``."""
    return ReleasedWeights(MINDCV_RELEASE_URL + path, sha256_prefix)


@dataclass(frozen=True)
class Preprocessing:
    """What the weights expect at evaluation: resize the short side to ``input_size / crop_pct``, center-crop
    ``input_size``, order the channels, then ``(pixel - mean) / std`` per channel on the 0-255 scale. The
    defaults are MindCV's (RGB, ImageNet statistics, 224 from 256, bilinear). Megvii's V2+ weights, for one,
    take BGR 0-255 as it is: ``channel_order="BGR", mean=(0, 0, 0), std=(1, 1, 1)``."""

    input_size: int = IMAGE_SIZE
    crop_pct: float = CROP_PCT
    interpolation: str = INTERPOLATION
    channel_order: str = "RGB"
    mean: Tuple[float, ...] = IMAGENET_MEAN  # in channel_order
    std: Tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS or self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS} and interpolation one of "
                             f"{INTERPOLATIONS}, got {self.channel_order!r}, {self.interpolation!r}")
        if len(self.mean) != IMAGE_CHANNELS or len(self.std) != IMAGE_CHANNELS or not 0 < self.crop_pct <= 1:
            raise ValueError(f"mean and std need {IMAGE_CHANNELS} values and crop_pct must be in (0, 1], got "
                             f"{self.mean}, {self.std}, {self.crop_pct}")

    def describe(self) -> str:
        """The input the weights take, in words: "RGB, ImageNet mean/std"."""
        imagenet = tuple(self.mean) == IMAGENET_MEAN and tuple(self.std) == IMAGENET_STD
        statistics = "ImageNet mean/std" if imagenet else f"mean {list(self.mean)}, std {list(self.std)}"
        return f"{self.channel_order}, {statistics}"


@dataclass(frozen=True)
class Reported:
    """A figure published by others (not measured here), and where."""

    value: float
    source: str


@dataclass(frozen=True)
class Accuracy:
    """ImageNet top-1 and top-5 (%) that a source published for a model, in the form it gives them: accuracies
    (MindCV's model cards: ``top1``, ``top5``) or error rates, 100 - accuracy (the papers and the official
    code: ``top1_error``, ``top5_error``). ``top1_accuracy`` / ``top5_accuracy`` read either form."""

    source: str
    top1: Optional[float] = None
    top5: Optional[float] = None
    top1_error: Optional[float] = None
    top5_error: Optional[float] = None
    note: str = ""  # what a reader of the figure should know (another chip's result, extra training data)

    def __post_init__(self) -> None:
        as_accuracy = self.top1 is not None
        if as_accuracy == (self.top1_error is not None):
            raise ValueError(f"{self.source}: give the top-1 either as top1 or as top1_error, got {self}")
        if (self.top5_error if as_accuracy else self.top5) is not None:
            raise ValueError(f"{self.source}: give the top-5 in the top-1's form (accuracy or error), got {self}")
        values = [v for v in (self.top1, self.top5, self.top1_error, self.top5_error) if v is not None]
        if not all(0 <= v <= 100 for v in values):
            raise ValueError(f"{self.source}: percentages must be within 0-100, got {values}")

    @property
    def stated_as_error(self) -> bool:
        return self.top1_error is not None

    @property
    def top1_accuracy(self) -> float:
        return self.top1 if self.top1 is not None else round(100 - self.top1_error, 4)

    @property
    def top5_accuracy(self) -> Optional[float]:
        if self.top5_error is not None:
            return round(100 - self.top5_error, 4)
        return self.top5


@dataclass(frozen=True)
class PublishedFigures:
    """Published figures of a model; None where no source gives one. The model table, the recipes' headers
    (``make_configs.py``) and the docs read them from here."""

    mflops: Optional[Reported] = None  # multiply-adds at 224 x 224, millions
    params_m: Optional[Reported] = None  # parameters, millions, counted as the source counts them
    mindcv: Optional[Accuracy] = None  # MindCV's released checkpoint
    official: Optional[Accuracy] = None  # the official (Megvii) code's model
    paper: Optional[Accuracy] = None  # the paper's own table


@dataclass(frozen=True)
class ModelInfo:
    """The facts of one registered model."""

    weights: Optional[ReleasedWeights] = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    # The 3x3 stride-2 pools' padding the model is built with unless told otherwise: what its weights were
    # trained with.
    pool_padding: str = "same"
    published: PublishedFigures = field(default_factory=PublishedFigures)
    # The input the official (Megvii) code's released weights take, where the official code is the only
    # source of weights. ``convert.megvii`` folds it into the converted weights, which then take
    # ``preprocessing``; ``official_input_note`` says what ``Preprocessing`` cannot (a mean image).
    official_preprocessing: Optional[Preprocessing] = None
    official_input_note: str = ""

    def __post_init__(self) -> None:
        if self.pool_padding not in POOL_PADDINGS:
            raise ValueError(f"pool_padding must be one of {POOL_PADDINGS}, got {self.pool_padding!r}")
