"""ShuffleNet V1 (Zhang et al., CVPR 2018), with MindCV's parameter names and semantics.

Canonical layout: MindCV 0.3.0's, where each grouped 1x1 conv is one tensor
``branch_main_1.0.weight`` of shape [out, in/g, 1, 1]. MindCV's later layout splits it into g dense
convs (``branch_main_1.0.convs.{k}.weight``); such checkpoints are converted when loaded
(``checkpoints.mindcv_v1``). The single grouped conv was chosen because it trains faster on CPU than g
dense convs (``benchmarks/experiments/bench_cpu_layers.py``: 8-15% per layer, 6% for the whole g3 1.0x network) and
loads MindCV's released V1 checkpoints as they are.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from mindspore import Tensor, nn, ops

from .backbone import ShuffleNetBase
from .graph_reuse import ReusedGraphUnit
from .layers import (
    ChannelShuffle,
    DepthwiseConv2d,
    GlobalAvgPool,
    classifier_dropout,
    downsample_pool,
    init_like_mindcv,
    stem_conv,
)
from .metadata import MEGVII, MINDCV_ACCURACY, Accuracy, ModelInfo, PublishedFigures, Reported, mindcv_release
from .registry import model_info, register_model
from .weights import load_pretrained

__all__ = ["ShuffleNetV1", "ShuffleV1Block", "SHUFFLENET_V1_CHANNELS"]

# groups -> width -> (stem, stage2, stage3, stage4) output channels.
# g3 and g8: MindCV's and the official code's tables. g1, g2, g4: the paper's Table 1 at 1.0x, scaled
# by the width with the stem of the g3 tables; where the paper's figure does not divide into groups
# (each unit's bottleneck, stage/4, must split into g groups) it is rounded to the nearest multiple of
# 4*g: g2 0.5x 100 -> 104, g2 1.5x 300 -> 304, g4 0.5x 136 -> 144, g4 1.5x 408 -> 416.
SHUFFLENET_V1_CHANNELS = {
    1: {"05": (12, 72, 144, 288), "10": (24, 144, 288, 576),
        "15": (24, 216, 432, 864), "20": (48, 288, 576, 1152)},
    2: {"05": (12, 104, 208, 416), "10": (24, 200, 400, 800),
        "15": (24, 304, 608, 1216), "20": (48, 400, 800, 1600)},
    3: {"05": (12, 120, 240, 480), "10": (24, 240, 480, 960),
        "15": (24, 360, 720, 1440), "20": (48, 480, 960, 1920)},
    4: {"05": (12, 144, 288, 576), "10": (24, 272, 544, 1088),
        "15": (24, 416, 832, 1664), "20": (48, 544, 1088, 2176)},
    8: {"05": (16, 192, 384, 768), "10": (24, 384, 768, 1536),
        "15": (24, 576, 1152, 2304), "20": (48, 768, 1536, 3072)},
}
STAGE_REPEATS = (4, 8, 4)


class ShuffleV1Block(ReusedGraphUnit):
    """One ShuffleNet V1 unit: 1x1 group conv, channel shuffle, 3x3 depthwise conv, 1x1 group conv.

    Args:
        in_channels: channels of the unit's input.
        out_channels: channels of the unit's output. A stride-2 unit concatenates the average-pooled
            input, so its main branch produces ``out_channels - in_channels``.
        mid_channels: bottleneck width.
        stride: 1 (residual add) or 2 (downsample and concat).
        groups: groups of the 1x1 convs.
        group_first_conv: False for the network's first unit, whose narrow input is not grouped.
        pool_padding: padding of the stride-2 shortcut's average pool ("same" or "symmetric").
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int, groups: int,
                 group_first_conv: bool = True, pool_padding: str = "same") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV1Block stride must be 1 or 2, got {stride}")
        self.stride = stride
        main_out = out_channels - in_channels if stride == 2 else out_channels
        self.branch_main_1 = nn.SequentialCell(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1, group=groups if group_first_conv else 1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(),
        )
        self.shuffle = ChannelShuffle(groups) if groups > 1 else None
        self.branch_main_2 = nn.SequentialCell(
            DepthwiseConv2d(mid_channels, stride),
            nn.BatchNorm2d(mid_channels),
            nn.Conv2d(mid_channels, main_out, kernel_size=1, group=groups),
            nn.BatchNorm2d(main_out),
        )
        self.branch_proj = downsample_pool("avg", pool_padding) if stride == 2 else None
        self.relu = nn.ReLU()
        self.concat = ops.Concat(axis=1)

    def construct(self, x: Tensor) -> Tensor:
        out = self.branch_main_1(x)
        if self.shuffle is not None:
            out = self.shuffle(out)
        out = self.branch_main_2(out)
        if self.stride == 1:
            return self.relu(x + out)
        return self.relu(self.concat((self.branch_proj(x), out)))


class ShuffleNetV1(ShuffleNetBase):
    """ShuffleNet V1.

    Args:
        channels: output channels of (stem, stage2, stage3, stage4); see ``SHUFFLENET_V1_CHANNELS``.
            Reduced widths such as ``(12, 24, 48, 96)`` with ``groups=3`` give a small network.
        groups: groups of the 1x1 convs (1, 2, 3, 4 and 8 in the paper).
        num_classes: classifier outputs.
        in_channels: image channels.
        stage_repeats: units per stage (the first of each downsamples).
        pool_padding: padding of the stem max pool and the shortcut average pools, "same" (MindCV 0.3.0,
            which trained the released checkpoints; the default) or "symmetric" (official code, MindCV's
            current main); see ``layers.downsample_pool``.
        stem_pad_value: pad the stem conv's input with these values (one per image channel) instead
            of zeros; converted official weights record it (see ``convert.megvii``).
        drop_rate: dropout probability before the classifier (0: none).
        features_only: build a feature extractor: no classifier, the network returns a tuple of the maps
            ``out_indices`` chooses (see ``backbone``: 0 the pooled stem at stride 4, 1-3 the stages at
            strides 8/16/32; V1 has no final conv), described by ``feature_info``.
        out_indices: with ``features_only``, the feature indices to return, in that order (default: all).
    """

    def __init__(
        self,
        channels: Sequence[int] = SHUFFLENET_V1_CHANNELS[3]["10"],
        groups: int = 3,
        num_classes: int = 1000,
        in_channels: int = 3,
        stage_repeats: Sequence[int] = STAGE_REPEATS,
        pool_padding: str = "same",
        stem_pad_value: Optional[Sequence[float]] = None,
        drop_rate: float = 0.0,
        features_only: bool = False,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        _check_channels(channels, groups, stage_repeats)
        stem, *stage_channels = channels
        self.channels = tuple(channels)
        self.groups = groups
        self.num_classes = num_classes
        self.options: Dict[str, Any] = {
            "pool_padding": pool_padding,
            "stem_pad_value": None if stem_pad_value is None else [float(v) for v in stem_pad_value],
        }

        self.first_conv = nn.SequentialCell(
            stem_conv(in_channels, stem, stem_pad_value),
            nn.BatchNorm2d(stem),
            nn.ReLU(),
        )
        self.max_pool = downsample_pool("max", pool_padding)

        blocks, points = [], []
        width, reduction = stem, 4
        for stage, (out_channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            reduction *= 2
            for i in range(repeats):
                blocks.append(ShuffleV1Block(
                    width, out_channels, out_channels // 4, stride=2 if i == 0 else 1, groups=groups,
                    group_first_conv=not (stage == 0 and i == 0), pool_padding=pool_padding))
                points.append((f"features.{len(blocks) - 1}", out_channels, reduction))
                width = out_channels
        n_units, _ = self._plan_features(("max_pool", stem, 4), points, None, features_only, out_indices)
        self.features = nn.SequentialCell(blocks[:n_units])

        self.num_features = width
        if features_only:
            self.num_classes = 0
            self.global_pool = self.classifier = self.dropout = None
            self._omit_head("classifier")
        else:
            self.global_pool = GlobalAvgPool()
            self.classifier = nn.Dense(width, num_classes, has_bias=False)
            self.dropout = classifier_dropout(drop_rate)
        init_like_mindcv(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """The map before the global pool (stage 4's output)."""
        x = self.first_conv(x)
        x = self.max_pool(x)
        return self.features(x)

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The maps of ``out_indices`` (a classifier: every feature index), in that order."""
        x = self.max_pool(self.first_conv(x))
        maps = (x,) if self._emit_stem else ()
        for unit, emit in zip(self.features, self._emit_units):
            x = unit(x)
            if emit:
                maps = maps + (x,)
        return self._select(maps)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global pool, then (unless ``pre_logits``: the pooled features, ``num_features`` wide) dropout and
        the classifier."""
        x = self.global_pool(x)
        if pre_logits or self.classifier is None:
            return x
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)

    def construct(self, x: Tensor):
        if self.features_only:
            return self.forward_stages(x)
        return self.forward_head(self.forward_features(x))


def _check_channels(channels: Sequence[int], groups: int, stage_repeats: Sequence[int]) -> None:
    if len(channels) != len(stage_repeats) + 1:
        raise ValueError(f"ShuffleNetV1 channels must list the stem and {len(stage_repeats)} stages, "
                         f"got {tuple(channels)}")
    if min(stage_repeats) < 1:
        raise ValueError(f"every stage needs at least one unit, got stage_repeats={tuple(stage_repeats)}")
    previous = channels[0]
    for c in channels[1:]:
        if c % (4 * groups) or (c - previous) % groups or c <= previous:
            raise ValueError(
                f"ShuffleNetV1 with groups={groups}: each stage width must be a multiple of "
                f"4*groups={4 * groups} and exceed the previous width by a multiple of {groups}, "
                f"got {tuple(channels)}")
        previous = c


def _v1(groups: int, width: str, pretrained: bool, num_classes: int, in_channels: int,
        **kwargs) -> ShuffleNetV1:
    name = f"shufflenet_v1_g{groups}_{width}"
    kwargs.setdefault("pool_padding", model_info(name).pool_padding)
    model = ShuffleNetV1(SHUFFLENET_V1_CHANNELS[groups][width], groups=groups, num_classes=num_classes,
                         in_channels=in_channels, **kwargs)
    if pretrained:
        load_pretrained(model, name)
    return model


# Sources of the published figures below (FLOPs are multiply-adds).
PAPER = "ShuffleNet V1 paper, Zhang et al., CVPR 2018"
PAPER_FLOPS = PAPER + ", Table 1"
PAPER_TABLE_2 = PAPER + ", Table 2"
OFFICIAL = MEGVII + ", ShuffleNetV1 model table"


def _paper_only(mflops: Optional[float], paper_error: float) -> ModelInfo:
    """A width and group count only the paper has (its Table 2): no official or MindCV model."""
    return ModelInfo(published=PublishedFigures(mflops=Reported(mflops, PAPER_FLOPS) if mflops else None,
                                                paper=Accuracy(PAPER_TABLE_2, top1_error=paper_error)))


def _official(mflops: float, official_error: Tuple[float, float], paper_error: Optional[float] = None,
              paper_source: str = PAPER_TABLE_2, mindcv: Optional[Tuple[float, float]] = None) -> PublishedFigures:
    """A model of the official code (g3, g8): its FLOPs and top-1 / top-5 error, the paper's top-1 error where
    it gives one, and MindCV's top-1 / top-5 where MindCV released weights."""
    return PublishedFigures(
        mflops=Reported(mflops, OFFICIAL),
        official=Accuracy(OFFICIAL, top1_error=official_error[0], top5_error=official_error[1]),
        paper=Accuracy(paper_source, top1_error=paper_error) if paper_error is not None else None,
        mindcv=Accuracy(MINDCV_ACCURACY, top1=mindcv[0], top5=mindcv[1]) if mindcv else None)


@register_model(_paper_only(None, 45.1))
def shufflenet_v1_g1_05(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 0.5x with 1 group (stages 72/144/288)."""
    return _v1(1, "05", pretrained, num_classes, in_channels, **kwargs)


@register_model(_paper_only(143, 33.6))
def shufflenet_v1_g1_10(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x with 1 group (stages 144/288/576)."""
    return _v1(1, "10", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g1_15(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.5x with 1 group (stages 216/432/864)."""
    return _v1(1, "15", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g1_20(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 2.0x with 1 group (stages 288/576/1152)."""
    return _v1(1, "20", pretrained, num_classes, in_channels, **kwargs)


@register_model(_paper_only(None, 44.4))
def shufflenet_v1_g2_05(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 0.5x with 2 groups (stages 104/208/416)."""
    return _v1(2, "05", pretrained, num_classes, in_channels, **kwargs)


@register_model(_paper_only(140, 32.7))
def shufflenet_v1_g2_10(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x with 2 groups (stages 200/400/800)."""
    return _v1(2, "10", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g2_15(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.5x with 2 groups (stages 304/608/1216)."""
    return _v1(2, "15", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g2_20(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 2.0x with 2 groups (stages 400/800/1600)."""
    return _v1(2, "20", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv1/shufflenet_v1_g3_05-42cfe109.ckpt", "42cfe109"),
    published=_official(38, (42.7, 20.0), 43.2, mindcv=(57.05, 79.73)),
))
def shufflenet_v1_g3_05(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 0.5x with 3 groups (stages 120/240/480)."""
    return _v1(3, "05", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv1/shufflenet_v1_g3_10-245f0ccf.ckpt", "245f0ccf"),
    published=_official(138, (32.2, 12.3), 32.6, mindcv=(67.77, 87.73)),
))
def shufflenet_v1_g3_10(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x with 3 groups (stages 240/480/960)."""
    return _v1(3, "10", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(292, (28.4, 9.8), 28.5, paper_source=PAPER)))
def shufflenet_v1_g3_15(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.5x with 3 groups (stages 360/720/1440)."""
    return _v1(3, "15", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(524, (25.9, 8.6), 26.3, paper_source=PAPER)))
def shufflenet_v1_g3_20(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 2.0x with 3 groups (stages 480/960/1920)."""
    return _v1(3, "20", pretrained, num_classes, in_channels, **kwargs)


@register_model(_paper_only(None, 41.6))
def shufflenet_v1_g4_05(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 0.5x with 4 groups (stages 144/288/576)."""
    return _v1(4, "05", pretrained, num_classes, in_channels, **kwargs)


@register_model(_paper_only(133, 32.8))
def shufflenet_v1_g4_10(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x with 4 groups (stages 272/544/1088)."""
    return _v1(4, "10", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g4_15(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.5x with 4 groups (stages 416/832/1664)."""
    return _v1(4, "15", pretrained, num_classes, in_channels, **kwargs)


@register_model
def shufflenet_v1_g4_20(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 2.0x with 4 groups (stages 544/1088/2176)."""
    return _v1(4, "20", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(40, (41.2, 19.0), 42.3)))
def shufflenet_v1_g8_05(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 0.5x with 8 groups (stages 192/384/768)."""
    return _v1(8, "05", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(138, (32.0, 13.6), 32.4)))
def shufflenet_v1_g8_10(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.0x with 8 groups (stages 384/768/1536)."""
    return _v1(8, "10", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(290, (29.0, 10.4))))
def shufflenet_v1_g8_15(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 1.5x with 8 groups (stages 576/1152/2304)."""
    return _v1(8, "15", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(published=_official(522, (27.1, 9.2))))
def shufflenet_v1_g8_20(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV1:
    """ShuffleNet V1 2.0x with 8 groups (stages 768/1536/3072)."""
    return _v1(8, "20", pretrained, num_classes, in_channels, **kwargs)
