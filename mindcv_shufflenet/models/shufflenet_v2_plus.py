"""ShuffleNetV2+ (Megvii's official ShuffleNet-Series): ShuffleNet V2 units with hard-swish, squeeze-and-
excitation, 3x3 / 5x5 / 7x7 depthwise kernels and an Xception-style unit, in the per-unit architecture
the authors' training script searched for.

The layout is the official code's, which is V2's (see ``shufflenet_v2``): no max pool after the stem
(four stride-2 stages instead of three), ReLU in the first stage and hard-swish after it, SE from the
third stage, and a head of conv 1x1 (1280), global pool, SE, a 1280x1280 fully connected layer with
hard-swish, dropout 0.2 and the classifier (no biases anywhere).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

from mindspore import Tensor, nn, ops

from .backbone import ShuffleNetBase
from .complexity import Counts, Tally, register_counter
from .graph_reuse import ReusedGraphUnit
from .layers import (
    DepthwiseConv2d,
    EvenOddSplit,
    GlobalAvgPool,
    HSwish,
    SqueezeExcite,
    classifier_dropout,
    init_like_mindcv,
    stem_conv,
)
from .layers import activation as make_activation
from .metadata import MEGVII, Accuracy, ModelInfo, Preprocessing, PublishedFigures, Reported
from .registry import register_model
from .shufflenet_v2 import ShuffleV2Block
from .weights import load_pretrained

__all__ = ["ShuffleNetV2Plus", "XceptionBlock", "SHUFFLENET_V2_PLUS_CHANNELS", "ARCHITECTURE", "count_v2_plus"]

# (stem, stage1, stage2, stage3, stage4, conv_last) output channels: the official network.py.
SHUFFLENET_V2_PLUS_CHANNELS = {
    "small": (16, 36, 104, 208, 416, 1280),
    "medium": (16, 48, 128, 256, 512, 1280),
    "large": (16, 68, 168, 336, 672, 1280),
}
STAGE_REPEATS = (4, 4, 8, 4)
# Per stage: activation, and whether its units have SE (the official network.py).
STAGE_ACTIVATIONS = ("relu", "hswish", "hswish", "hswish")
STAGE_SE = (False, False, True, True)
# The unit choices, by the official code's index: (kind, depthwise kernel).
UNIT_CHOICES = {0: ("shuffle", 3), 1: ("shuffle", 5), 2: ("shuffle", 7), 3: ("xception", 3)}
# One choice per unit, the architecture of the official train.py (the same for the three sizes).
ARCHITECTURE = (0, 0, 3, 1, 1, 1, 0, 0, 2, 0, 2, 1, 1, 0, 2, 0, 2, 1, 3, 2)
SE_REDUCTION = 4
DROP_RATE = 0.2


def plus_se(channels: int) -> SqueezeExcite:
    """ShuffleNetV2+'s SE: C -> C/4 (BatchNorm, ReLU) -> C, no biases, hard-sigmoid gate."""
    return SqueezeExcite(channels, channels // SE_REDUCTION, gate="hsigmoid", norm=True, bias=False)


class XceptionBlock(ReusedGraphUnit):
    """ShuffleNetV2+'s Xception-style unit (stride 1): the odd channels go through three 3x3 depthwise
    + 1x1 conv pairs, each 1x1 followed by BatchNorm and the activation, then the optional SE; the even
    channels pass through, as in a V2 unit.

    Args:
        channels: channels of the unit's input and output (half of them enter the branch).
        activation: "relu" or "hswish".
        se: makes the SE cell for the branch's output, given its channels (None: none).
    """

    def __init__(self, channels: int, activation: str = "hswish", se=None) -> None:
        super().__init__()
        half = channels // 2
        layers = []
        for _ in range(3):
            layers += [DepthwiseConv2d(half, 1), nn.BatchNorm2d(half), nn.Conv2d(half, half, kernel_size=1),
                       nn.BatchNorm2d(half), make_activation(activation)]
        self.branch_main = nn.SequentialCell(layers)
        self.se = se(half) if se is not None else None
        self.split = EvenOddSplit()
        self.concat = ops.Concat(axis=1)

    def construct(self, x: Tensor) -> Tensor:
        identity, x_main = self.split(x)
        out = self.branch_main(x_main)
        if self.se is not None:
            out = self.se(out)
        return self.concat((identity, out))


class ShuffleNetV2Plus(ShuffleNetBase):
    """ShuffleNetV2+.

    Args:
        channels: output channels of (stem, four stages, conv_last); see ``SHUFFLENET_V2_PLUS_CHANNELS``.
            Reduced widths such as ``(8, 16, 32, 48, 64, 96)`` give a small network for tests.
        num_classes: classifier outputs.
        in_channels: image channels.
        stage_repeats: units per stage (the first of each downsamples).
        architecture: one choice per unit (``UNIT_CHOICES``: 0-2 shuffle units with 3/5/7 kernels, 3 the
            Xception unit, stride 1 only); default the official one.
        stem_pad_value: pad the stem conv's input with these values (one per image channel) instead of
            zeros; converted official weights record it (see ``convert.megvii``).
        drop_rate: dropout probability before the classifier (official: 0.2).
        features_only: build a feature extractor: no head, the network returns a tuple of the maps
            ``out_indices`` chooses (see ``backbone``: 0-3 the four stages at strides 4/8/16/32, 4 conv_last),
            described by ``feature_info``.
        out_indices: with ``features_only``, the feature indices to return, in that order (default: all).
    """

    def __init__(
        self,
        channels: Sequence[int] = SHUFFLENET_V2_PLUS_CHANNELS["large"],
        num_classes: int = 1000,
        in_channels: int = 3,
        stage_repeats: Sequence[int] = STAGE_REPEATS,
        architecture: Sequence[int] = ARCHITECTURE,
        stem_pad_value: Optional[Sequence[float]] = None,
        drop_rate: float = DROP_RATE,
        features_only: bool = False,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        _check(channels, stage_repeats, architecture)
        stem, *stage_channels, last = channels
        self.channels = tuple(channels)
        self.num_classes = num_classes
        self.options: Dict[str, Any] = {
            "architecture": [int(c) for c in architecture],
            "stem_pad_value": None if stem_pad_value is None else [float(v) for v in stem_pad_value],
        }

        self.first_conv = nn.SequentialCell(stem_conv(in_channels, stem, stem_pad_value), nn.BatchNorm2d(stem),
                                            HSwish())
        blocks, points = [], []
        width, reduction = stem, 2
        choices = iter(architecture)
        for stage, (out_channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            act, se = STAGE_ACTIVATIONS[stage], plus_se if STAGE_SE[stage] else None
            reduction *= 2
            for i in range(repeats):
                kind, kernel = UNIT_CHOICES[next(choices)]
                if kind == "xception":
                    blocks.append(XceptionBlock(out_channels, act, se))
                else:
                    blocks.append(ShuffleV2Block(width if i == 0 else out_channels // 2, out_channels,
                                                 out_channels // 2, stride=2 if i == 0 else 1, kernel_size=kernel,
                                                 activation=act, se=se))
                points.append((f"features.{len(blocks) - 1}", out_channels, reduction))
                width = out_channels
        # the stem (stride 2) is no feature index: the first stage gives the stride-4 map
        n_units, build_final = self._plan_features(None, points, ("conv_last", last, reduction), features_only,
                                                   out_indices)
        self.features = nn.SequentialCell(blocks[:n_units])

        self.conv_last = nn.SequentialCell(nn.Conv2d(width, last, kernel_size=1), nn.BatchNorm2d(last),
                                           HSwish()) if build_final else None
        self.num_features = last
        if features_only:
            self.num_classes = 0
            self.pool = self.last_se = self.flatten = self.fc = self.dropout = self.classifier = None
            self._omit_head("last_se", "fc", "classifier")
        else:
            self.pool = GlobalAvgPool(keep_dims=True)
            self.last_se = plus_se(last)
            self.flatten = nn.Flatten()
            self.fc = nn.SequentialCell(nn.Dense(last, last, has_bias=False), HSwish())
            self.dropout = classifier_dropout(drop_rate)
            self.classifier = nn.Dense(last, num_classes, has_bias=False)
        init_like_mindcv(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """The map before the global pool (conv_last's output)."""
        x = self.first_conv(x)
        x = self.features(x)
        if self.conv_last is not None:
            x = self.conv_last(x)
        return x

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The maps of ``out_indices`` (a classifier: every feature index), in that order."""
        x = self.first_conv(x)
        maps = ()
        for unit, emit in zip(self.features, self._emit_units):
            x = unit(x)
            if emit:
                maps = maps + (x,)
        if self.conv_last is not None:
            maps = maps + (self.conv_last(x),)
        return self._select(maps)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global pool, SE and the 1280-wide fully connected layer with hard-swish, then (unless
        ``pre_logits``: those ``num_features`` values) dropout and the classifier."""
        x = self.flatten(self.last_se(self.pool(x)))
        x = self.fc(x)
        if pre_logits or self.classifier is None:
            return x
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)

    def construct(self, x: Tensor):
        if self.features_only:
            return self.forward_stages(x)
        return self.forward_head(self.forward_features(x))


def _check(channels: Sequence[int], stage_repeats: Sequence[int], architecture: Sequence[int]) -> None:
    if len(channels) != len(stage_repeats) + 2:
        raise ValueError(f"ShuffleNetV2Plus channels must list the stem, {len(stage_repeats)} stages and conv_last, "
                         f"got {tuple(channels)}")
    if len(stage_repeats) > len(STAGE_ACTIVATIONS) or min(stage_repeats) < 1:
        raise ValueError(f"ShuffleNetV2Plus has up to {len(STAGE_ACTIVATIONS)} stages of at least one unit, "
                         f"got stage_repeats={tuple(stage_repeats)}")
    if len(architecture) != sum(stage_repeats) or any(c not in UNIT_CHOICES for c in architecture):
        raise ValueError(f"architecture needs one choice in {sorted(UNIT_CHOICES)} per unit "
                         f"({sum(stage_repeats)}), got {tuple(architecture)}")
    firsts = [sum(stage_repeats[:s]) for s in range(len(stage_repeats))]
    if any(UNIT_CHOICES[architecture[i]][0] == "xception" for i in firsts):
        raise ValueError(f"the Xception unit (choice 3) has no stride-2 form: the first unit of a stage "
                         f"(units {firsts}) must be a shuffle unit, got {tuple(architecture)}")
    stem, *stages, _ = channels
    previous = stem
    for c in stages:
        if c % 2 or c <= previous:
            raise ValueError(f"ShuffleNetV2Plus stage widths must be even and grow from stage to stage (from the "
                             f"stem's {stem}), got {tuple(channels)}")
        previous = c


def count_v2_plus(channels: Sequence[int], num_classes: int = 1000, image_size: int = 224,
                  stage_repeats: Sequence[int] = STAGE_REPEATS, architecture: Sequence[int] = ARCHITECTURE) -> Counts:
    """Parameters and multiply-adds of ``ShuffleNetV2Plus(channels, ...)`` without building it."""
    t = Tally()
    stem, *stage_channels, last = channels
    size = t.conv(3, stem, 3, (image_size, image_size), stride=2)
    t.bn(stem)
    width, unit = stem, 0
    for stage, (out_channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
        mid = out_channels // 2
        for i in range(repeats):
            kind, k = UNIT_CHOICES[architecture[unit]]
            unit += 1
            if kind == "xception":
                for _ in range(3):
                    t.conv(mid, mid, 3, size, groups=mid)
                    t.bn(mid)
                    t.conv(mid, mid, 1, size)
                    t.bn(mid)
                main_out = mid
                out_size = size
            else:
                main_in, main_out = (width, out_channels - width) if i == 0 else (mid, mid)
                t.conv(main_in, mid, 1, size)
                t.bn(mid)
                out_size = t.conv(mid, mid, k, size, stride=2 if i == 0 else 1, groups=mid)
                t.bn(mid)
                t.conv(mid, main_out, 1, out_size)
                t.bn(main_out)
                if i == 0:
                    t.conv(width, width, k, size, stride=2, groups=width)
                    t.bn(width)
                    t.conv(width, width, 1, out_size)
                    t.bn(width)
            if STAGE_SE[stage]:
                t.se(main_out, main_out // SE_REDUCTION, norm=True, bias=False)
            size, width = out_size, out_channels
    t.conv(width, last, 1, size)
    t.bn(last)
    t.se(last, last // SE_REDUCTION, norm=True, bias=False)
    t.dense(last, last)
    t.dense(last, num_classes)
    return Counts(t.params, t.macs)


def _v2_plus(size: str, pretrained: bool, num_classes: int, in_channels: int, **kwargs) -> ShuffleNetV2Plus:
    model = ShuffleNetV2Plus(SHUFFLENET_V2_PLUS_CHANNELS[size], num_classes=num_classes, in_channels=in_channels,
                             **kwargs)
    if pretrained:
        load_pretrained(model, f"shufflenet_v2_plus_{size}")  # none released here: convert the official ones
    return model


# Source of the published figures (FLOPs are multiply-adds; parameters without BatchNorm statistics).
OFFICIAL = MEGVII + ", ShuffleNetV2+ README"
# The official weights take BGR 0-255 images as they are (train.py's ToBGRTensor, OpenCV bilinear resize to
# 256, center crop 224); converted weights take this project's RGB, ImageNet mean/std.
OFFICIAL_INPUT = Preprocessing(channel_order="BGR", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _info(mflops: float, params_m: float, top1_error: float, top5_error: float) -> ModelInfo:
    published = PublishedFigures(mflops=Reported(mflops, OFFICIAL), params_m=Reported(params_m, OFFICIAL),
                                 official=Accuracy(OFFICIAL, top1_error=top1_error, top5_error=top5_error))
    return ModelInfo(published=published, official_preprocessing=OFFICIAL_INPUT)


@register_model(_info(156, 5.1, 25.9, 8.3))
def shufflenet_v2_plus_small(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2Plus:
    """ShuffleNet V2+ Small (official; stages 36/104/208/416, hard-swish, SE, 3/5/7 kernels, Xception units)."""
    return _v2_plus("small", pretrained, num_classes, in_channels, **kwargs)


@register_model(_info(222, 5.6, 24.3, 7.4))
def shufflenet_v2_plus_medium(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2Plus:
    """ShuffleNet V2+ Medium (official; stages 48/128/256/512, hard-swish, SE, 3/5/7 kernels, Xception units)."""
    return _v2_plus("medium", pretrained, num_classes, in_channels, **kwargs)


@register_model(_info(360, 6.7, 22.9, 6.7))
def shufflenet_v2_plus_large(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2Plus:
    """ShuffleNet V2+ Large (official; stages 68/168/336/672, hard-swish, SE, 3/5/7 kernels, Xception units)."""
    return _v2_plus("large", pretrained, num_classes, in_channels, **kwargs)


for _size, _channels in SHUFFLENET_V2_PLUS_CHANNELS.items():
    register_counter(f"shufflenet_v2_plus_{_size}", partial(count_v2_plus, _channels))
