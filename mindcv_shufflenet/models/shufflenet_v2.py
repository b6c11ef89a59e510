"""ShuffleNet V2 (Ma et al., ECCV 2018), with MindCV's parameter names and semantics.

The layout is MindCV's (itself the official Megvii code's): a stride-1 unit sends the even channels of
its input through unchanged and the odd ones through the main branch, then concatenates; a stride-2
unit runs both branches on the whole input, the projection keeping its width and the main branch
producing the rest. Interleaving the split with the concat in this way *is* the channel shuffle.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from mindspore import Tensor, nn, ops

from .backbone import ShuffleNetBase
from .complexity import Counts, Tally, register_counter
from .graph_reuse import ReusedGraphUnit
from .layers import (
    DepthwiseConv2d,
    EvenOddSplit,
    GlobalAvgPool,
    SqueezeExcite,
    classifier_dropout,
    downsample_pool,
    init_like_mindcv,
    stem_conv,
)
from .layers import activation as make_activation
from .metadata import (
    MEGVII,
    MINDCV_ACCURACY,
    MINDCV_PARAMS,
    Accuracy,
    ModelInfo,
    PublishedFigures,
    Reported,
    mindcv_release,
)
from .registry import model_info, register_model
from .weights import load_pretrained

__all__ = ["ShuffleNetV2", "ShuffleV2Block", "SHUFFLENET_V2_CHANNELS", "SHUFFLENET_V2_50_CHANNELS", "count_v2"]

# (stem, stage2, stage3, stage4, conv5) output channels: the paper's Table 5.
SHUFFLENET_V2_CHANNELS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)
PROJ_CHANNELS = ("input", "half")

# ShuffleNet v2-50 (the paper's appendix, Table 6: 2.3 GFLOPs): (stem, stage2..stage5, conv6) channels
# and units per stage. Its stage 2 keeps the max pool's 56x56 (its first unit projects at stride 1), as
# ResNet-50's conv2_x does: 50 layers are 16 units of 3 convs, the stem conv and the classifier.
SHUFFLENET_V2_50_CHANNELS = (64, 244, 488, 976, 1952, 2048)
SHUFFLENET_V2_50_REPEATS = (3, 4, 6, 3)


class ShuffleV2Block(ReusedGraphUnit):
    """One ShuffleNet V2 unit.

    Args:
        in_channels: channels entering the main branch: the whole input for a unit with a projection
            branch (stride 2), half of it (the odd channels) otherwise.
        out_channels: channels the unit outputs.
        mid_channels: width of the main branch's depthwise conv.
        stride: 1 (basic unit) or 2 (spatial downsampling unit).
        proj_out: (units with a projection branch) channels the projection branch outputs; the main
            branch makes the rest. Default ``in_channels`` (MindCV, official code); torchvision gives
            each branch half.
        kernel_size: of the depthwise convs (3; ShuffleNetV2+ also uses 5 and 7).
        activation: "relu" (V2) or "hswish" (ShuffleNetV2+).
        se: makes the squeeze-and-excitation cell applied to the main branch's output, given its
            channels (None: none). It follows the branch's last activation, or with ``residual`` its
            last BatchNorm, before the addition (the V2 paper's appendix).
        residual: (units without projection) add the main branch's input to its output, then the
            activation: the V2 paper's residual form for large models.
        project: give the unit a projection branch, so that it takes the whole input; default: only
            when ``stride`` is 2 (ShuffleNet v2-50's first unit projects at stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int,
                 proj_out: Optional[int] = None, kernel_size: int = 3, activation: str = "relu",
                 se: Optional[Callable[[int], nn.Cell]] = None, residual: bool = False,
                 project: Optional[bool] = None) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleV2Block stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.project = stride == 2 if project is None else bool(project)
        if stride == 2 and not self.project:
            raise ValueError("a stride-2 ShuffleV2Block needs its projection branch")
        if not self.project or proj_out is None:
            proj_out = in_channels
        main_out = out_channels - proj_out
        self.residual = bool(residual) and not self.project
        if self.residual and main_out != in_channels:
            raise ValueError(f"a residual unit's main branch must keep its width, got {in_channels} -> {main_out}")
        layers = [
            nn.Conv2d(in_channels, mid_channels, kernel_size=1),
            nn.BatchNorm2d(mid_channels),
            make_activation(activation),
            DepthwiseConv2d(mid_channels, stride, kernel_size),
            nn.BatchNorm2d(mid_channels),
            nn.Conv2d(mid_channels, main_out, kernel_size=1),
            nn.BatchNorm2d(main_out),
        ]
        if not self.residual:
            layers.append(make_activation(activation))
        self.branch_main = nn.SequentialCell(layers)
        self.se = se(main_out) if se is not None else None
        self.act = make_activation(activation) if self.residual else None
        if self.project:
            self.branch_proj = nn.SequentialCell(
                DepthwiseConv2d(in_channels, stride, kernel_size),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, proj_out, kernel_size=1),
                nn.BatchNorm2d(proj_out),
                make_activation(activation),
            )
            self.split = None
        else:
            self.branch_proj = None
            self.split = EvenOddSplit()
        self.concat = ops.Concat(axis=1)

    def main(self, x: Tensor) -> Tensor:
        """The main branch, with its SE and residual connection if it has them."""
        out = self.branch_main(x)
        if self.se is not None:
            out = self.se(out)
        if self.residual:
            out = self.act(out + x)
        return out

    def construct(self, x: Tensor) -> Tensor:
        if not self.project:
            identity, x_main = self.split(x)  # even channels pass through, odd ones feed the main branch
            return self.concat((identity, self.main(x_main)))
        return self.concat((self.branch_proj(x), self.main(x)))


class ShuffleNetV2(ShuffleNetBase):
    """ShuffleNet V2.

    Args:
        channels: output channels of (stem, stage2, stage3, stage4, conv5); see
            ``SHUFFLENET_V2_CHANNELS``. Reduced widths such as ``(8, 16, 32, 64, 128)`` give a small
            network for tests and small data sets.
        num_classes: classifier outputs.
        in_channels: image channels.
        stage_repeats: units per stage (the first of each has a projection branch and downsamples).
        pool_padding: stem max pool padding, "same" (MindCV, the default) or "symmetric"
            (torchvision, official code); see ``layers.downsample_pool``.
        proj_channels: what a stride-2 unit's projection branch outputs: "input" (its input width, the
            main branch making the rest; MindCV and the official code, the default) or "half" (half the
            unit's output; torchvision). They differ only in stage 2's first unit, and not at 0.5x.
        classifier_bias: give the classifier a bias (torchvision's ``fc`` has one; MindCV's has not).
        stem_pad_value: pad the stem conv's input with these values (one per image channel) instead
            of zeros; converted official weights record it (see ``convert.megvii``).
        drop_rate: dropout probability before the classifier (0: none).
        first_stage_stride: 2 (V2), or 1 for ShuffleNet v2-50, whose first stage keeps the pool's size.
        se: squeeze-and-excitation on each unit's main branch (:func:`paper_se`), the paper's SE form.
        residual: the paper's residual form: stride-1 units add the main branch's input to its output.
        features_only: build a feature extractor: no classifier, the network returns a tuple of the maps
            ``out_indices`` chooses (see ``backbone``: 0 the pooled stem at stride 4, 1-3 the stages at
            strides 8/16/32, 4 conv5), described by ``feature_info``.
        out_indices: with ``features_only``, the feature indices to return, in that order (default: all).
    """

    def __init__(
        self,
        channels: Sequence[int] = SHUFFLENET_V2_CHANNELS["x1_0"],
        num_classes: int = 1000,
        in_channels: int = 3,
        stage_repeats: Sequence[int] = STAGE_REPEATS,
        pool_padding: str = "same",
        proj_channels: str = "input",
        classifier_bias: bool = False,
        stem_pad_value: Optional[Sequence[float]] = None,
        drop_rate: float = 0.0,
        first_stage_stride: int = 2,
        se: bool = False,
        residual: bool = False,
        features_only: bool = False,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        _check_channels(channels, stage_repeats)
        if proj_channels not in PROJ_CHANNELS:
            raise ValueError(f"unknown proj_channels {proj_channels!r}: choose one of {', '.join(PROJ_CHANNELS)}")
        if first_stage_stride not in (1, 2):
            raise ValueError(f"first_stage_stride must be 1 or 2, got {first_stage_stride}")
        stem, *stage_channels, last = channels
        self.channels = tuple(channels)
        self.num_classes = num_classes
        self.options: Dict[str, Any] = {
            "pool_padding": pool_padding, "proj_channels": proj_channels, "classifier_bias": bool(classifier_bias),
            "stem_pad_value": None if stem_pad_value is None else [float(v) for v in stem_pad_value],
            "se": bool(se), "residual": bool(residual),
        }

        self.first_conv = nn.SequentialCell(
            stem_conv(in_channels, stem, stem_pad_value),
            nn.BatchNorm2d(stem),
            nn.ReLU(),
        )
        self.max_pool = downsample_pool("max", pool_padding)

        blocks, points = [], []
        width, reduction = stem, 4
        unit = dict(se=paper_se if se else None, residual=residual)
        for stage, (out_channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
            proj_out = width if proj_channels == "input" else out_channels // 2
            stride = first_stage_stride if stage == 0 else 2
            reduction *= stride
            blocks.append(ShuffleV2Block(width, out_channels, out_channels // 2, stride=stride, proj_out=proj_out,
                                         project=True, **unit))
            for _ in range(repeats - 1):
                blocks.append(ShuffleV2Block(out_channels // 2, out_channels, out_channels // 2, stride=1, **unit))
            points += [(f"features.{i}", out_channels, reduction) for i in range(len(points), len(blocks))]
            width = out_channels
        n_units, build_final = self._plan_features(("max_pool", stem, 4), points, ("conv_last", last, reduction),
                                                   features_only, out_indices)
        self.features = nn.SequentialCell(blocks[:n_units])

        self.conv_last = nn.SequentialCell(
            nn.Conv2d(width, last, kernel_size=1),
            nn.BatchNorm2d(last),
            nn.ReLU(),
        ) if build_final else None
        self.num_features = last
        self._classifier_bias = bool(classifier_bias)
        if features_only:
            self.num_classes = 0
            self.pool = self.classifier = self.dropout = None
            self._omit_head("classifier")
        else:
            self.pool = GlobalAvgPool()
            self.classifier = nn.Dense(last, num_classes, has_bias=bool(classifier_bias))
            self.dropout = classifier_dropout(drop_rate)
        init_like_mindcv(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """The map before the global pool (conv5's output)."""
        x = self.first_conv(x)
        x = self.max_pool(x)
        x = self.features(x)
        if self.conv_last is not None:
            x = self.conv_last(x)
        return x

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The maps of ``out_indices`` (a classifier: every feature index), in that order."""
        x = self.max_pool(self.first_conv(x))
        maps = (x,) if self._emit_stem else ()
        for unit, emit in zip(self.features, self._emit_units):
            x = unit(x)
            if emit:
                maps = maps + (x,)
        if self.conv_last is not None:
            maps = maps + (self.conv_last(x),)
        return self._select(maps)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global pool, then (unless ``pre_logits``: the pooled features, ``num_features`` wide) dropout and
        the classifier."""
        x = self.pool(x)
        if pre_logits or self.classifier is None:
            return x
        if self.dropout is not None:
            x = self.dropout(x)
        return self.classifier(x)

    def construct(self, x: Tensor):
        if self.features_only:
            return self.forward_stages(x)
        return self.forward_head(self.forward_features(x))


def _check_channels(channels: Sequence[int], stage_repeats: Sequence[int]) -> None:
    if len(channels) != len(stage_repeats) + 2:
        raise ValueError(f"ShuffleNetV2 channels must list stem, {len(stage_repeats)} stages and conv5, "
                         f"got {tuple(channels)}")
    if min(stage_repeats) < 1:
        raise ValueError(f"every stage needs at least one unit, got stage_repeats={tuple(stage_repeats)}")
    stem, *stages, _ = channels
    previous = stem
    for c in stages:
        if c % 2 or c <= previous:
            raise ValueError(f"ShuffleNetV2 stage widths must be even and grow from stage to stage "
                             f"(from the stem's {stem}), got {tuple(channels)}")
        previous = c


def paper_se(channels: int) -> SqueezeExcite:
    """The SE module of the V2 paper's SE-ShuffleNet v2-164, as the official ShuffleNetV2.Large builds it:
    two C x C fully connected layers with biases, ReLU between, sigmoid gate."""
    return SqueezeExcite(channels, channels, gate="sigmoid", norm=False, bias=True)


def count_v2(channels: Sequence[int], num_classes: int = 1000, image_size: int = 224,
             stage_repeats: Sequence[int] = STAGE_REPEATS, proj_channels: str = "input",
             classifier_bias: bool = False, first_stage_stride: int = 2, se: bool = False,
             residual: bool = False) -> Counts:
    """Parameters and multiply-adds of ``ShuffleNetV2(channels, ...)`` without building it."""
    t = Tally()
    stem, *stage_channels, last = channels
    size = t.conv(3, stem, 3, (image_size, image_size), stride=2)
    t.bn(stem)
    size = t.pool(size)
    width = stem
    for stage, (out_channels, repeats) in enumerate(zip(stage_channels, stage_repeats)):
        stride = first_stage_stride if stage == 0 else 2
        mid = out_channels // 2
        proj_out = width if proj_channels == "input" else mid
        for i in range(repeats):
            main_in = width if i == 0 else mid
            main_out = out_channels - proj_out if i == 0 else mid
            t.conv(main_in, mid, 1, size)
            t.bn(mid)
            out_size = t.conv(mid, mid, 3, size, stride=stride if i == 0 else 1, groups=mid)
            t.bn(mid)
            t.conv(mid, main_out, 1, out_size)
            t.bn(main_out)
            if se:
                t.se(main_out, main_out, norm=False, bias=True)
            if i == 0:
                t.conv(width, width, 3, size, stride=stride, groups=width)
                t.bn(width)
                t.conv(width, proj_out, 1, out_size)
                t.bn(proj_out)
            size = out_size
        width = out_channels
    t.conv(width, last, 1, size)
    t.bn(last)
    t.dense(last, num_classes, bias=classifier_bias)
    return Counts(t.params, t.macs)


def _v2(width: str, pretrained: bool, num_classes: int, in_channels: int, **kwargs) -> ShuffleNetV2:
    name = f"shufflenet_v2_{width}"
    kwargs.setdefault("pool_padding", model_info(name).pool_padding)
    model = ShuffleNetV2(SHUFFLENET_V2_CHANNELS[width], num_classes=num_classes, in_channels=in_channels, **kwargs)
    if pretrained:
        load_pretrained(model, name)
    return model


# Sources of the published figures below (FLOPs are multiply-adds).
PAPER = "ShuffleNet V2 paper, Ma et al., ECCV 2018"
PAPER_FLOPS = PAPER + ", Table 5"
OFFICIAL = MEGVII + ", ShuffleNetV2 model table"


def _published(mflops: float, params_m: float, mindcv: Tuple[float, float], official_error: Tuple[float, float],
               paper_error: float, mindcv_note: str = "") -> PublishedFigures:
    """A V2 width's figures: FLOPs from the paper, parameters and top-1 / top-5 from MindCV's model card, the
    official code's top-1 / top-5 error, the paper's top-1 error."""
    return PublishedFigures(
        mflops=Reported(mflops, PAPER_FLOPS), params_m=Reported(params_m, MINDCV_PARAMS),
        mindcv=Accuracy(MINDCV_ACCURACY, top1=mindcv[0], top5=mindcv[1], note=mindcv_note),
        official=Accuracy(OFFICIAL, top1_error=official_error[0], top5_error=official_error[1]),
        paper=Accuracy(PAPER, top1_error=paper_error))


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv2/shufflenet_v2_x0_5-8c841061.ckpt", "8c841061"),
    published=_published(41, 1.37, mindcv=(60.53, 82.11), official_error=(38.9, 17.4), paper_error=39.7,
                         mindcv_note="60.65 / 82.26 on Ascend 910*"),
))
def shufflenet_v2_x0_5(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
    """ShuffleNet V2 0.5x (stages 48/96/192, conv5 1024)."""
    return _v2("x0_5", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv2/shufflenet_v2_x1_0-0da4b7fa.ckpt", "0da4b7fa"),
    published=_published(146, 2.29, mindcv=(69.47, 88.88), official_error=(30.6, 11.1), paper_error=30.6),
))
def shufflenet_v2_x1_0(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
    """ShuffleNet V2 1.0x (stages 116/232/464, conv5 1024)."""
    return _v2("x1_0", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv2/shufflenet_v2_x1_5-00b56131.ckpt", "00b56131"),
    published=_published(299, 3.53, mindcv=(72.79, 90.93), official_error=(27.4, 9.4), paper_error=27.4),
))
def shufflenet_v2_x1_5(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
    """ShuffleNet V2 1.5x (stages 176/352/704, conv5 1024)."""
    return _v2("x1_5", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    weights=mindcv_release("shufflenetv2/shufflenet_v2_x2_0-ed8e698d.ckpt", "ed8e698d"),
    published=_published(591, 7.44, mindcv=(75.07, 92.08), official_error=(25.0, 7.6), paper_error=25.1),
))
def shufflenet_v2_x2_0(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
    """ShuffleNet V2 2.0x (stages 244/488/976, conv5 2048)."""
    return _v2("x2_0", pretrained, num_classes, in_channels, **kwargs)


PAPER_LARGE = PAPER + ", Table 6 (large models)"


@register_model(ModelInfo(
    published=PublishedFigures(mflops=Reported(2300, PAPER_LARGE), paper=Accuracy(PAPER_LARGE, top1_error=22.8)),
))
def shufflenet_v2_50(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
    """ShuffleNet V2-50 of the paper's appendix (stages 244/488/976/1952, conv6 2048); se=True, residual=True."""
    kwargs.setdefault("pool_padding", model_info("shufflenet_v2_50").pool_padding)
    model = ShuffleNetV2(SHUFFLENET_V2_50_CHANNELS, num_classes=num_classes, in_channels=in_channels,
                         stage_repeats=SHUFFLENET_V2_50_REPEATS, first_stage_stride=1, **kwargs)
    if pretrained:
        load_pretrained(model, "shufflenet_v2_50")  # none released: an error that says so
    return model


for _width, _channels in SHUFFLENET_V2_CHANNELS.items():
    register_counter(f"shufflenet_v2_{_width}", partial(count_v2, _channels))
register_counter("shufflenet_v2_50", partial(count_v2, SHUFFLENET_V2_50_CHANNELS,
                                             stage_repeats=SHUFFLENET_V2_50_REPEATS, first_stage_stride=1))
