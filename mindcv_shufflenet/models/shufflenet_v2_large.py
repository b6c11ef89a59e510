"""ShuffleNetV2.Large and ShuffleNetV2.ExLarge (Megvii's official ShuffleNet-Series): deep ShuffleNet V2
networks with grouped 3x3 convs, squeeze-and-excitation, residual connections and a three-conv stem.

V2.Large is the V2 paper's SE-ShuffleNet v2-164 (12.7 GFLOPs). Each unit splits its input into even and odd
channels (the V2 shuffle); the odd ones go through 1x1 conv, grouped 3x3 conv, 1x1 conv and SE and are added
back to themselves, except in a stage's first unit, where a 3x3 conv projects the even ones instead of
passing them; the two halves are concatenated and a ReLU follows; a stride-2 unit ends with a 1x1 "down"
conv. V2.ExLarge's first unit of a stage runs both branches on the whole input, its main branch adds a 3x3
depthwise conv and halves the width, the ReLU follows only the residual addition, and a 1x1 conv closes each
stage. Both train with auxiliary classifiers after the first three stages (loss weights 1.0 for the main
output, then 0.7, 0.5, 0.3 from the deepest head); in training mode the network returns
``(logits, aux_stage3, aux_stage2, aux_stage1)``, in eval mode (validation, export) only the logits.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from .backbone import ShuffleNetBase
from .complexity import Counts, ParamCount, Tally, register_counter
from .graph_reuse import ReusedGraphUnit
from .layers import (
    EvenOddSplit,
    GlobalAvgPool,
    SqueezeExcite,
    classifier_dropout,
    downsample_pool,
    init_like_mindcv,
    stem_conv,
)
from .metadata import MEGVII, Accuracy, ModelInfo, Preprocessing, PublishedFigures, Reported
from .registry import model_info, register_model
from .weights import load_pretrained

__all__ = ["ShuffleNetV2Large", "LargeUnit", "ExLargeUnit", "AuxHead", "SHUFFLENET_V2_LARGE_CONFIGS",
           "count_v2_large", "AUX_LOSS_WEIGHTS"]

# Per model, from the official network.py: channels = the three stem convs, the four stages' outputs and
# (Large) conv_last; units per stage; groups of the grouped 3x3 convs; the auxiliary heads' widths (after
# stages 1-3); the SE reduction; BatchNorm's eps.
SHUFFLENET_V2_LARGE_CONFIGS: Dict[str, Dict[str, Any]] = {
    "large": dict(channels=(64, 64, 128, 256, 512, 1024, 2048, 1280), stage_repeats=(10, 10, 23, 10), groups=8,
                  aux_channels=(256, 512, 1024), se_reduction=1, bn_eps=1e-9),
    "exlarge": dict(channels=(64, 128, 256, 320, 640, 1280, 2560), stage_repeats=(8, 16, 36, 10), groups=16,
                    aux_channels=(256, 512, 1024), se_reduction=4, bn_eps=1e-5),
}
VARIANTS = tuple(SHUFFLENET_V2_LARGE_CONFIGS)
# The official train.py's loss weights: the main output, then the auxiliary heads from the deepest.
AUX_LOSS_WEIGHTS = (1.0, 0.7, 0.5, 0.3)
DROP_RATE = 0.2


def _conv_bn(cin: int, cout: int, kernel: int, eps: float, stride: int = 1, groups: int = 1,
             relu: bool = True) -> list:
    """Conv (padding kernel // 2, no bias), BatchNorm and optionally ReLU, as a list of cells."""
    pad = dict(pad_mode="pad", padding=kernel // 2) if kernel > 1 else {}
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, group=groups, **pad), nn.BatchNorm2d(cout, eps=eps)]
    return layers + [nn.ReLU()] if relu else layers


def _se(channels: int, reduction: int) -> SqueezeExcite:
    """The official large models' SE: fully connected layers with biases (here 1x1 convs), sigmoid gate."""
    return SqueezeExcite(channels, channels // reduction, gate="sigmoid", norm=False, bias=True)


class LargeUnit(ReusedGraphUnit):
    """A ShuffleNetV2.Large unit (see the module docstring).

    Args:
        half_in: channels of each half of the input (even ones: identity or projection; odd ones: main).
        out_channels: channels the unit outputs (each half ``out_channels // 2``).
        stride: 1 or 2 (a stage's first unit; with a ``down`` 1x1 conv at its end).
        groups: groups of the 3x3 conv.
        project: a stage's first unit: project the even half with a 3x3 conv, no residual addition.
        se_reduction, eps: the SE's reduction and BatchNorm's eps.
    """

    def __init__(self, half_in: int, out_channels: int, stride: int, groups: int, project: bool,
                 se_reduction: int = 1, eps: float = 1e-9) -> None:
        super().__init__()
        half = out_channels // 2
        if not project and (stride != 1 or half_in != half):
            raise ValueError(f"a LargeUnit without projection keeps its size: got {half_in} -> {half}, stride {stride}")
        self.split = EvenOddSplit()
        self.proj = nn.SequentialCell(_conv_bn(half_in, half, 3, eps, stride, relu=False)) if project else None
        self.branch_main = nn.SequentialCell(_conv_bn(half_in, half, 1, eps)
                                             + _conv_bn(half, half, 3, eps, stride, groups)
                                             + _conv_bn(half, half, 1, eps, relu=False))
        self.se = _se(half, se_reduction)
        self.relu = nn.ReLU()
        self.down = nn.SequentialCell(_conv_bn(out_channels, out_channels, 1, eps)) if stride == 2 else None
        self.concat = ops.Concat(axis=1)

    def construct(self, x: Tensor) -> Tensor:
        even, odd = self.split(x)
        out = self.se(self.branch_main(odd))
        if self.proj is not None:
            even = self.proj(even)
        else:
            out = out + odd
        out = self.relu(self.concat((even, out)))
        if self.down is not None:
            out = self.down(out)
        return out


class ExLargeUnit(ReusedGraphUnit):
    """A ShuffleNetV2.ExLarge unit (see the module docstring).

    Args:
        in_channels: channels entering the main branch: the whole input for a stage's first unit, half of
            it (the odd channels) otherwise.
        out_channels: channels the unit outputs; the main branch makes half of them.
        stride: 1 or 2.
        groups: groups of the 3x3 conv.
        project: a stage's first unit: a 3x3 conv projects the whole input to the other half, no residual.
        se_reduction, eps: the SE's reduction and BatchNorm's eps.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, project: bool,
                 se_reduction: int = 4, eps: float = 1e-5) -> None:
        super().__init__()
        half = out_channels // 2
        if not project and (stride != 1 or in_channels != half):
            raise ValueError(f"an ExLargeUnit without projection keeps its size: got {in_channels} -> {half}, "
                             f"stride {stride}")
        self.split = None if project else EvenOddSplit()
        self.proj = nn.SequentialCell(_conv_bn(in_channels, out_channels - half, 3, eps, stride)) if project else None
        self.branch_main = nn.SequentialCell(
            _conv_bn(in_channels, out_channels, 1, eps) + _conv_bn(out_channels, out_channels, 3, eps, stride, groups)
            + _conv_bn(out_channels, out_channels, 3, eps, groups=out_channels, relu=False)
            + _conv_bn(out_channels, half, 1, eps, relu=False))
        self.se = _se(half, se_reduction)
        self.relu = nn.ReLU()
        self.concat = ops.Concat(axis=1)

    def construct(self, x: Tensor) -> Tensor:
        if self.proj is not None:
            return self.concat((self.proj(x), self.se(self.branch_main(x))))
        even, odd = self.split(x)
        return self.concat((even, self.relu(odd + self.se(self.branch_main(odd)))))


class AuxHead(nn.Cell):
    """An auxiliary classifier: 3x3 stride-2 max pool (padded by one), 1x1 conv, 3x3 conv (each with
    BatchNorm and ReLU), global average pool, fully connected layer with a bias. Training only."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, eps: float) -> None:
        super().__init__()
        # MindSpore's own padded pool (never exported: eval mode does not run the heads); it reads ReLU outputs.
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        self.conv = nn.SequentialCell(_conv_bn(in_channels, channels, 1, eps) + _conv_bn(channels, channels, 3, eps))
        self.global_pool = GlobalAvgPool()
        self.classifier = nn.Dense(channels, num_classes)

    def construct(self, x: Tensor) -> Tensor:
        return self.classifier(self.global_pool(self.conv(self.pool(x))))


class ShuffleNetV2Large(ShuffleNetBase):
    """ShuffleNetV2.Large or ShuffleNetV2.ExLarge.

    Args:
        channels: the three stem convs', the four stages' and (``variant="large"``) conv_last's output
            channels; see ``SHUFFLENET_V2_LARGE_CONFIGS``. Reduced widths such as
            ``(8, 8, 16, 32, 64, 128, 256, 64)`` (stage widths divisible by 2 * groups) give a small network.
        variant: "large" or "exlarge": the unit and head of that model.
        num_classes: classifier outputs (the auxiliary heads' too).
        in_channels: image channels.
        stage_repeats: units per stage.
        groups: groups of the units' 3x3 convs.
        aux_channels: widths of the auxiliary heads after stages 1-3 (default: the variant's).
        aux_heads: build the auxiliary heads (training returns their logits too; see the module docstring).
        se_reduction: of the units' SE (default: the variant's: 1 for Large, 4 for ExLarge).
        bn_eps: BatchNorm's eps (default: the variant's: the official Large uses 1e-9).
        pool_padding: the stem max pool's padding, "symmetric" (official, the default) or "same".
        input_offset: subtract a fixed image of this (height, width) from the input, a non-trainable
            parameter: weights converted from the official V2.Large carry its per-pixel mean image there
            (``convert.megvii``); such a network takes only that image size.
        stem_pad_value: pad the stem conv's input with these values (one per image channel) instead of
            zeros; converted official ExLarge weights record it (see ``convert.megvii``).
        drop_rate: dropout probability before the classifier (official: 0.2).
        features_only: build a feature extractor: no classifiers (main or auxiliary), the network returns a
            tuple of the maps ``out_indices`` chooses (see ``backbone``: 0-3 the four stages at strides
            4/8/16/32, 4 V2.Large's conv_last; V2.ExLarge has none), described by ``feature_info``.
        out_indices: with ``features_only``, the feature indices to return, in that order (default: all).
    """

    def __init__(
        self,
        channels: Sequence[int] = SHUFFLENET_V2_LARGE_CONFIGS["large"]["channels"],
        variant: str = "large",
        num_classes: int = 1000,
        in_channels: int = 3,
        stage_repeats: Optional[Sequence[int]] = None,
        groups: Optional[int] = None,
        aux_channels: Optional[Sequence[int]] = None,
        aux_heads: bool = True,
        se_reduction: Optional[int] = None,
        bn_eps: Optional[float] = None,
        pool_padding: str = "symmetric",
        input_offset: Optional[Sequence[int]] = None,
        stem_pad_value: Optional[Sequence[float]] = None,
        drop_rate: float = DROP_RATE,
        features_only: bool = False,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        config = SHUFFLENET_V2_LARGE_CONFIGS[variant]
        stage_repeats = tuple(config["stage_repeats"] if stage_repeats is None else stage_repeats)
        groups = config["groups"] if groups is None else groups
        aux_channels = tuple(config["aux_channels"] if aux_channels is None else aux_channels)
        se_reduction = config["se_reduction"] if se_reduction is None else se_reduction
        eps = config["bn_eps"] if bn_eps is None else bn_eps
        _check(channels, variant, stage_repeats, groups, aux_channels)
        stem, stages = tuple(channels[:3]), tuple(channels[3:7])
        self.channels, self.variant, self.num_classes = tuple(channels), variant, num_classes
        self.options: Dict[str, Any] = {
            "variant": variant, "aux_heads": bool(aux_heads), "aux_channels": list(aux_channels),
            "se_reduction": int(se_reduction), "pool_padding": pool_padding,
            "input_offset": None if input_offset is None else [int(s) for s in input_offset],
            "stem_pad_value": None if stem_pad_value is None else [float(v) for v in stem_pad_value],
        }

        self.input_offset = None
        if input_offset is not None:
            shape = (1, in_channels, *input_offset)
            self.input_offset = Parameter(Tensor(np.zeros(shape, np.float32)), name="input_offset", requires_grad=False)
        self.first_conv = nn.SequentialCell(
            [stem_conv(in_channels, stem[0], stem_pad_value), nn.BatchNorm2d(stem[0], eps=eps), nn.ReLU()]
            + _conv_bn(stem[0], stem[1], 3, eps) + _conv_bn(stem[1], stem[2], 3, eps))
        self.max_pool = downsample_pool("max", pool_padding)

        features, points, width, reduction = _stages(variant, stem[2], stages, stage_repeats, groups, se_reduction,
                                                      eps)
        final = ("conv_last", channels[7], reduction) if variant == "large" else None
        n_stages, build_final = self._plan_features(("max_pool", stem[2], 4), points, final, features_only,
                                                    out_indices)
        self.features = nn.CellList(features[:n_stages])
        self.conv_last = nn.SequentialCell(_conv_bn(width, channels[7], 3, eps)) if build_final else None
        self.num_features = channels[-1]
        self._classifier_bias = True
        if features_only:
            self.num_classes = 0
            self.aux_heads = self.pool = self.dropout = self.classifier = None
            self._omit_head("aux_heads", "classifier")
        else:
            self.aux_heads = nn.CellList([AuxHead(c_in, c, num_classes, eps) for c_in, c in
                                          zip(stages, aux_channels)]) if aux_heads else None
            self.pool = GlobalAvgPool()
            self.dropout = classifier_dropout(drop_rate)
            self.classifier = nn.Dense(channels[-1], num_classes)
        init_like_mindcv(self)

    def _stem(self, x: Tensor) -> Tensor:
        if self.input_offset is not None:
            x = x - self.input_offset
        return self.max_pool(self.first_conv(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """The map before the global pool (V2.Large: conv_last's output; V2.ExLarge: the last stage's)."""
        x = self._stem(x)
        for stage in self.features:
            x = stage(x)
        if self.conv_last is not None:
            x = self.conv_last(x)
        return x

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The maps of ``out_indices`` (a classifier: every feature index), in that order."""
        x = self._stem(x)
        maps = (x,) if self._emit_stem else ()
        for stage, emit in zip(self.features, self._emit_units):
            x = stage(x)
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

    def _reset_other_heads(self, num_classes: int) -> None:
        """The auxiliary classifiers get ``num_classes`` outputs too; with 0 they are removed."""
        if self.aux_heads is None:
            return
        if num_classes == 0:
            self.aux_heads = None
            self.options["aux_heads"] = False
            return
        for head in self.aux_heads:
            head.classifier = self._new_dense(head.classifier.in_channels, num_classes, True)

    def construct(self, x: Tensor):
        if self.features_only:
            return self.forward_stages(x)
        if not (self.training and self.aux_heads is not None):
            return self.forward_head(self.forward_features(x))
        stage1 = self.features[0](self._stem(x))
        stage2 = self.features[1](stage1)
        stage3 = self.features[2](stage2)
        final = self.features[3](stage3)
        if self.conv_last is not None:
            final = self.conv_last(final)
        return (self.forward_head(final), self.aux_heads[2](stage3), self.aux_heads[1](stage2),
                self.aux_heads[0](stage1))



def _stages(variant: str, width: int, stages: Sequence[int], stage_repeats: Sequence[int], groups: int,
            se_reduction: int, eps: float):
    """The four stages of units (``features.<i>``), their feature points (name, channels, reduction), and the
    width and reduction after the last."""
    features, points, reduction = [], [], 4
    for stage, (out_channels, repeats) in enumerate(zip(stages, stage_repeats)):
        stride = 1 if stage == 0 else 2
        reduction *= stride
        points.append((f"features.{stage}", out_channels, reduction))
        units = []
        for i in range(repeats):
            if variant == "large":
                units.append(LargeUnit(width // 2, out_channels, stride if i == 0 else 1, groups, project=i == 0,
                                       se_reduction=se_reduction, eps=eps))
            else:
                units.append(ExLargeUnit(width if i == 0 else out_channels // 2, out_channels,
                                         stride if i == 0 else 1, groups, project=i == 0,
                                         se_reduction=se_reduction, eps=eps))
            width = out_channels
        if variant == "exlarge":
            units.append(nn.SequentialCell(_conv_bn(out_channels, out_channels, 1, eps)))
        features.append(nn.SequentialCell(units))
    return features, points, width, reduction

def _check(channels: Sequence[int], variant: str, stage_repeats: Sequence[int], groups: int,
           aux_channels: Sequence[int]) -> None:
    expected = 8 if variant == "large" else 7
    if len(channels) != expected:
        raise ValueError(f"ShuffleNetV2Large({variant!r}) channels must list 3 stem convs, 4 stages"
                         f"{' and conv_last' if variant == 'large' else ''}, got {tuple(channels)}")
    if len(stage_repeats) != 4 or min(stage_repeats) < 1 or len(aux_channels) != 3:
        raise ValueError(f"ShuffleNetV2Large has 4 stages of at least one unit and 3 auxiliary heads, got "
                         f"stage_repeats={tuple(stage_repeats)}, aux_channels={tuple(aux_channels)}")
    stem, stages = channels[2], channels[3:7]
    if stem % 2 or any(c % (2 * groups) for c in stages):
        raise ValueError(f"ShuffleNetV2Large: the stem's output must be even and each stage's width a multiple of "
                         f"2 * groups = {2 * groups}, got {tuple(channels)}")


def count_v2_large(variant: str, num_classes: int = 1000, image_size: int = 224,
                   channels: Optional[Sequence[int]] = None, stage_repeats: Optional[Sequence[int]] = None,
                   groups: Optional[int] = None, aux_channels: Optional[Sequence[int]] = None, aux_heads: bool = True,
                   se_reduction: Optional[int] = None) -> Counts:
    """Parameters and multiply-adds of ``ShuffleNetV2Large(channels, variant, ...)`` without building it;
    the auxiliary heads' parameters are in ``params`` and ``aux_params``, their multiply-adds nowhere (eval)."""
    config = SHUFFLENET_V2_LARGE_CONFIGS[variant]
    channels = config["channels"] if channels is None else channels
    stage_repeats = config["stage_repeats"] if stage_repeats is None else stage_repeats
    groups = config["groups"] if groups is None else groups
    aux_channels = config["aux_channels"] if aux_channels is None else aux_channels
    reduction = config["se_reduction"] if se_reduction is None else se_reduction
    t = Tally()

    def conv_bn(cin, cout, k, size, stride=1, g=1):
        out = t.conv(cin, cout, k, size, stride, g)
        t.bn(cout)
        return out

    size = (image_size, image_size)
    width = 3
    for i, c in enumerate(channels[:3]):
        size = conv_bn(width, c, 3, size, stride=2 if i == 0 else 1)
        width = c
    size = t.pool(size)
    for stage, (c, repeats) in enumerate(zip(channels[3:7], stage_repeats)):
        half = c // 2
        for i in range(repeats):
            stride = 2 if i == 0 and stage > 0 else 1
            if variant == "large":
                main_in = width // 2
                out = conv_bn(main_in, half, 1, size)
                out = conv_bn(half, half, 3, out, stride, groups)
                conv_bn(half, half, 1, out)
                if i == 0:
                    conv_bn(main_in, half, 3, size, stride)
                if stride == 2:
                    conv_bn(c, c, 1, out)
            else:
                main_in = width if i == 0 else half
                out = conv_bn(main_in, c, 1, size)
                out = conv_bn(c, c, 3, out, stride, groups)
                conv_bn(c, c, 3, out, g=c)
                conv_bn(c, half, 1, out)
                if i == 0:
                    conv_bn(main_in, c - half, 3, size, stride)
            t.se(half, half // reduction, norm=False, bias=True)
            size, width = out, c
        if variant == "exlarge":
            conv_bn(c, c, 1, size)
    if variant == "large":
        size = conv_bn(width, channels[7], 3, size)
    t.dense(channels[-1], num_classes, bias=True)
    macs = t.macs
    aux = Tally()
    if aux_heads:
        for c_in, c in zip(channels[3:6], aux_channels):
            aux.conv(c_in, c, 1, (1, 1))
            aux.bn(c)
            aux.conv(c, c, 3, (1, 1))
            aux.bn(c)
            aux.dense(c, num_classes, bias=True)
    params = ParamCount(t.trainable + aux.trainable, t.buffers + aux.buffers)
    return Counts(params, macs, aux.params)


def _large(variant: str, pretrained: bool, num_classes: int, in_channels: int, **kwargs) -> ShuffleNetV2Large:
    name = f"shufflenet_v2_{variant}"
    kwargs.setdefault("pool_padding", model_info(name).pool_padding)
    model = ShuffleNetV2Large(SHUFFLENET_V2_LARGE_CONFIGS[variant]["channels"], variant, num_classes=num_classes,
                              in_channels=in_channels, **kwargs)
    if pretrained:
        load_pretrained(model, name)  # none released here: convert the official ones
    return model


LARGE_README = MEGVII + ", ShuffleNetV2.Large README"
EXLARGE_README = MEGVII + ", ShuffleNetV2.ExLarge README"
LARGE_PARAMS = LARGE_README + " (the count with the auxiliary heads)"
EXLARGE_PARAMS = EXLARGE_README + " (the count without the auxiliary heads)"
# The official evaluation input: BGR 0-255 after OpenCV's bilinear resize to 256 and a 224 center crop.
BGR_255 = Preprocessing(channel_order="BGR", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@register_model(ModelInfo(
    pool_padding="symmetric",
    published=PublishedFigures(mflops=Reported(12700, LARGE_README), params_m=Reported(140.7, LARGE_PARAMS),
                               official=Accuracy(LARGE_README, top1_error=18.56, top5_error=4.48)),
    official_preprocessing=BGR_255,
    official_input_note=("minus a per-pixel 224x224 mean image (ImageNet_1000_scale224_mean.xml in the official "
                         "repository; convert with --mean-image). The official train.py instead feeds RGB/255 "
                         "normalized with ImageNet's mean/std, in BGR order, with PCA lighting noise."),
))
def shufflenet_v2_large(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2Large:
    """ShuffleNet V2.Large (official; the paper's SE-ShuffleNet v2-164: residual, SE, grouped 3x3, aux heads)."""
    return _large("large", pretrained, num_classes, in_channels, **kwargs)


@register_model(ModelInfo(
    pool_padding="symmetric",
    published=PublishedFigures(mflops=Reported(46200, EXLARGE_README), params_m=Reported(254.7, EXLARGE_PARAMS),
                               official=Accuracy(EXLARGE_README, top1_error=15.52, top5_error=2.9,
                                                 note="with external training data: not expected from ImageNet alone")),
    official_preprocessing=BGR_255,
))
def shufflenet_v2_exlarge(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2Large:
    """ShuffleNet V2.ExLarge (official; residual, SE, 16-group 3x3 convs, aux heads; trained on extra data)."""
    return _large("exlarge", pretrained, num_classes, in_channels, **kwargs)


for _variant in VARIANTS:
    register_counter(f"shufflenet_v2_{_variant}", partial(count_v2_large, _variant))
