"""The official (Megvii) ShuffleNet V2 / V1 / V2+ weights -> this project's layout, with their input
folded in.

Layout. The official V2 is MindCV's network (MindCV ported it): the names map one to one
(``classifier.0`` -> ``classifier``). The official V1 applies its channel shuffle after the depthwise
conv, MindCV before it; a depthwise conv and its BatchNorm act channel by channel, so moving them
behind the shuffle only permutes their channels. The official V2+ names its units' SE
``branch_main.<n>.SE_opr`` (``se`` here, beside ``branch_main``) and its head's ``LastSE`` (``last_se``);
the rest maps one to one. V1 and V2 pad their pools on every side
(``pool_padding="symmetric"``). V2.Large / ExLarge: ``convert.megvii_large``.

Input. The official code feeds BGR images in 0-255 without mean/std, where this project feeds
``n = (rgb - mean) / std``. With ``rgb = std * n + mean``, the stem conv ``W`` (BGR input channels) on
the official input equals the conv ``W'[:, c] = W[:, 2 - c] * std[c]`` on ``n`` plus the constant
``b = sum W' * mean / std``, which moves into the BatchNorm's moving mean. That is exact where the 3x3
window lies inside the image. At the border the official conv reads zero padding, a black pixel,
which is ``-mean / std`` after normalization, not the 0 this network pads with; no choice of weights
repairs that, because a conv's bias cannot vary with position. So the converted weights record
``stem_pad_value = -mean / std``: the stem conv then pads with the normalized black pixel and the
conversion is exact everywhere (V2.Large takes more: see ``convert.megvii_large``). ``exact_border=False``
leaves it out (a plain network, MindCV's structure), which changes the stem's output on its first row and
column (and last, for odd sizes).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .common import ConvertedWeights, SourceState, as_float32, bn, fold_bgr255_stem
from .megvii_large import from_megvii_v2_large

__all__ = ["from_megvii_v2", "from_megvii_v1", "from_megvii_v2_plus", "from_megvii"]

_FEATURE = re.compile(r"^features\.(\d+)\.")


def _stem_and_head(src: SourceState, out: Dict[str, np.ndarray], mean: Optional[Sequence[float]],
                   std: Optional[Sequence[float]], exact_border: bool) -> Tuple[int, dict]:
    mean = IMAGENET_MEAN if mean is None else mean
    std = IMAGENET_STD if std is None else std
    stem = src.shape("first_conv.0.weight")[0]
    weight = src.take("first_conv.0.weight", (stem, 3, 3, 3))
    bn(src, "first_conv.1", "first_conv.1", out)
    out["first_conv.0.weight"], out["first_conv.1.moving_mean"], pad_value = fold_bgr255_stem(
        weight, out["first_conv.1.moving_mean"], mean, std)
    options = {"pool_padding": "symmetric", "stem_pad_value": pad_value if exact_border else None}
    return stem, options


def _units(state: Mapping[str, np.ndarray]) -> int:
    units = {int(m[1]) for key in state if (m := _FEATURE.match(key))}
    if not units or units != set(range(len(units))):
        raise ValueError(f"not an official ShuffleNet state dict: features units are {sorted(units)}")
    return len(units)


def from_megvii_v2(state: Mapping[str, np.ndarray], mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None, exact_border: bool = True) -> ConvertedWeights:
    """Convert the official ShuffleNetV2 state dict (``name -> array``, any width) to this project's,
    for input normalized with ``mean``/``std`` (default ImageNet's, as ``eval_transforms``)."""
    src = SourceState(state, "official ShuffleNetV2 state dict")
    if "first_conv.0.weight" not in src or "conv_last.0.weight" not in src:
        raise ValueError("not an official ShuffleNetV2 state dict: first_conv.0.weight or conv_last.0.weight "
                         "is missing (a V1 file? use a shufflenet_v1 model)")
    out: Dict[str, np.ndarray] = {}
    stem, options = _stem_and_head(src, out, mean, std, exact_border)
    channels, repeats = [stem], []
    width = stem
    for unit in range(_units(state)):
        p = f"features.{unit}"
        main_in, mid = src.shape(f"{p}.branch_main.0.weight")[1], src.shape(f"{p}.branch_main.0.weight")[0]
        if f"{p}.branch_proj.0.weight" in src:  # stride 2: a new stage
            proj = src.shape(f"{p}.branch_proj.2.weight")[0]
            out[f"{p}.branch_proj.0.weight"] = src.take(f"{p}.branch_proj.0.weight", (width, 1, 3, 3))
            bn(src, f"{p}.branch_proj.1", f"{p}.branch_proj.1", out)
            out[f"{p}.branch_proj.2.weight"] = src.take(f"{p}.branch_proj.2.weight", (proj, width, 1, 1))
            bn(src, f"{p}.branch_proj.3", f"{p}.branch_proj.3", out)
            expected_in = width
            repeats.append(0)
        else:
            if not repeats:
                raise ValueError(f"official ShuffleNetV2 state dict: {p} is a stride-1 unit before any stage began")
            proj = width // 2
            expected_in = width // 2
        if main_in != expected_in:
            raise ValueError(f"official ShuffleNetV2 state dict: {p}.branch_main.0.weight reads {main_in} "
                             f"channels, expected {expected_in}")
        main_out = src.shape(f"{p}.branch_main.5.weight")[0]
        out[f"{p}.branch_main.0.weight"] = src.take(f"{p}.branch_main.0.weight", (mid, main_in, 1, 1))
        bn(src, f"{p}.branch_main.1", f"{p}.branch_main.1", out)
        out[f"{p}.branch_main.3.weight"] = src.take(f"{p}.branch_main.3.weight", (mid, 1, 3, 3))
        bn(src, f"{p}.branch_main.4", f"{p}.branch_main.4", out)
        out[f"{p}.branch_main.5.weight"] = src.take(f"{p}.branch_main.5.weight", (main_out, mid, 1, 1))
        bn(src, f"{p}.branch_main.6", f"{p}.branch_main.6", out)
        if repeats[-1] == 0:
            width = proj + main_out
            channels.append(width)
        elif proj + main_out != width:
            raise ValueError(f"official ShuffleNetV2 state dict: {p} outputs {proj + main_out} channels, "
                             f"its stage {width}")
        repeats[-1] += 1
    last = src.shape("conv_last.0.weight")[0]
    out["conv_last.0.weight"] = src.take("conv_last.0.weight", (last, width, 1, 1))
    bn(src, "conv_last.1", "conv_last.1", out)
    num_classes = src.shape("classifier.0.weight")[0]
    out["classifier.weight"] = src.take("classifier.0.weight", (num_classes, last))
    channels.append(last)
    src.check_all_used()
    return ConvertedWeights(as_float32(out), "ShuffleNetV2", tuple(channels), tuple(repeats), num_classes,
                            options, source="megvii")


def from_megvii_v1(state: Mapping[str, np.ndarray], mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None, exact_border: bool = True) -> ConvertedWeights:
    """Convert the official ShuffleNetV1 state dict (``name -> array``, any width and groups) to this
    project's layout (MindCV 0.3.0's), for input normalized with ``mean``/``std``."""
    src = SourceState(state, "official ShuffleNetV1 state dict")
    if "first_conv.0.weight" not in src or "features.0.branch_main_1.0.weight" not in src:
        raise ValueError("not an official ShuffleNetV1 state dict: first_conv.0.weight or "
                         "features.0.branch_main_1.0.weight is missing (a V2 file? use a shufflenet_v2 model)")
    out: Dict[str, np.ndarray] = {}
    stem, options = _stem_and_head(src, out, mean, std, exact_border)
    # groups: the first unit's last 1x1 conv is grouped; its weight is [out, mid/groups, 1, 1]
    mid0 = src.shape("features.0.branch_main_1.0.weight")[0]
    groups = mid0 // src.shape("features.0.branch_main_2.0.weight")[1]
    channels, repeats = [stem], []
    width = stem
    for unit in range(_units(state)):
        p = f"features.{unit}"
        mid = src.shape(f"{p}.branch_main_1.0.weight")[0]
        unit_out = 4 * mid  # the official code's (and MindCV's) bottleneck is out/4
        stride2 = unit_out != width
        main_out = unit_out - width if stride2 else unit_out
        first_groups = 1 if unit == 0 else groups
        out[f"{p}.branch_main_1.0.weight"] = src.take(f"{p}.branch_main_1.0.weight",
                                                      (mid, width // first_groups, 1, 1))
        bn(src, f"{p}.branch_main_1.1", f"{p}.branch_main_1.1", out)
        # MindCV shuffles before the depthwise conv, the official code after: permute it and its BN
        source_of = np.arange(mid).reshape(mid // groups, groups).T.reshape(-1) if groups > 1 else np.arange(mid)
        out[f"{p}.branch_main_2.0.weight"] = src.take(f"{p}.branch_main_1.3.weight", (mid, 1, 3, 3))[source_of]
        bn(src, f"{p}.branch_main_1.4", f"{p}.branch_main_2.1", out, source_of)
        out[f"{p}.branch_main_2.2.weight"] = src.take(f"{p}.branch_main_2.0.weight", (main_out, mid // groups, 1, 1))
        bn(src, f"{p}.branch_main_2.1", f"{p}.branch_main_2.3", out)
        if stride2:
            repeats.append(0)
            width = unit_out
            channels.append(width)
        elif not repeats:
            raise ValueError(f"official ShuffleNetV1 state dict: {p} is a stride-1 unit before any stage began")
        repeats[-1] += 1
    num_classes = src.shape("classifier.0.weight")[0]
    out["classifier.weight"] = src.take("classifier.0.weight", (num_classes, width))
    src.check_all_used()
    return ConvertedWeights(as_float32(out), "ShuffleNetV1", tuple(channels), tuple(repeats), num_classes,
                            options, groups=groups, source="megvii")


# The official V2+ unit's index of its SE in ``branch_main``, by unit kind; and its convs / BatchNorms.
_PLUS_SE_INDEX = {"shuffle": 8, "xception": 15}
_PLUS_XCEPTION_CONVS = ((0, 1), (2, 3), (5, 6), (7, 8), (10, 11), (12, 13))  # (conv, its BatchNorm)


def _plus_se(src: SourceState, source: str, target: str, channels: int, out: Dict[str, np.ndarray]) -> None:
    """The official ``SELayer`` (``SE_opr.1`` conv, ``.2`` BatchNorm, ``.4`` conv) -> ``layers.SqueezeExcite``."""
    reduced = src.shape(f"{source}.SE_opr.1.weight")[0]
    out[f"{target}.reduce.0.weight"] = src.take(f"{source}.SE_opr.1.weight", (reduced, channels, 1, 1))
    bn(src, f"{source}.SE_opr.2", f"{target}.reduce.1", out)
    out[f"{target}.expand.weight"] = src.take(f"{source}.SE_opr.4.weight", (channels, reduced, 1, 1))


def _plus_unit(src: SourceState, p: str, width: int, new_stage: bool, out: Dict[str, np.ndarray]) -> Tuple[int, int]:
    """Copy one official V2+ unit; returns its choice (``UNIT_CHOICES`` index) and output channels."""
    if f"{p}.branch_main.2.weight" in src:  # the Xception unit: a 1x1 conv where a shuffle unit has its activation
        if new_stage:
            raise ValueError(f"official ShuffleNetV2+ state dict: {p} is an Xception unit with stride 2, which "
                             f"this network does not build")
        half = width // 2
        for conv, norm in _PLUS_XCEPTION_CONVS:
            shape = (half, 1, 3, 3) if conv % 5 == 0 else (half, half, 1, 1)
            out[f"{p}.branch_main.{conv}.weight"] = src.take(f"{p}.branch_main.{conv}.weight", shape)
            bn(src, f"{p}.branch_main.{norm}", f"{p}.branch_main.{norm}", out)
        kind, main_out, unit_out = "xception", half, width
    else:
        mid, main_in = src.shape(f"{p}.branch_main.0.weight")[:2]
        kernel = src.shape(f"{p}.branch_main.3.weight")[-1]
        main_out = src.shape(f"{p}.branch_main.5.weight")[0]
        if main_in != (width if new_stage else width // 2):
            raise ValueError(f"official ShuffleNetV2+ state dict: {p}.branch_main.0.weight reads {main_in} channels, "
                             f"expected {width if new_stage else width // 2}")
        out[f"{p}.branch_main.0.weight"] = src.take(f"{p}.branch_main.0.weight", (mid, main_in, 1, 1))
        bn(src, f"{p}.branch_main.1", f"{p}.branch_main.1", out)
        out[f"{p}.branch_main.3.weight"] = src.take(f"{p}.branch_main.3.weight", (mid, 1, kernel, kernel))
        bn(src, f"{p}.branch_main.4", f"{p}.branch_main.4", out)
        out[f"{p}.branch_main.5.weight"] = src.take(f"{p}.branch_main.5.weight", (main_out, mid, 1, 1))
        bn(src, f"{p}.branch_main.6", f"{p}.branch_main.6", out)
        if new_stage:
            out[f"{p}.branch_proj.0.weight"] = src.take(f"{p}.branch_proj.0.weight", (width, 1, kernel, kernel))
            bn(src, f"{p}.branch_proj.1", f"{p}.branch_proj.1", out)
            out[f"{p}.branch_proj.2.weight"] = src.take(f"{p}.branch_proj.2.weight", (width, width, 1, 1))
            bn(src, f"{p}.branch_proj.3", f"{p}.branch_proj.3", out)
        kind, unit_out = "shuffle", (width if new_stage else width // 2) + main_out
        if kernel not in (3, 5, 7):
            raise ValueError(f"official ShuffleNetV2+ state dict: {p} has a {kernel}x{kernel} depthwise kernel")
    se = f"{p}.branch_main.{_PLUS_SE_INDEX[kind]}"
    if f"{se}.SE_opr.1.weight" in src:
        _plus_se(src, se, f"{p}.se", main_out, out)
    choice = 3 if kind == "xception" else (3, 5, 7).index(kernel)
    return choice, unit_out


def from_megvii_v2_plus(state: Mapping[str, np.ndarray], mean: Optional[Sequence[float]] = None,
                        std: Optional[Sequence[float]] = None, exact_border: bool = True) -> ConvertedWeights:
    """Convert the official ShuffleNetV2+ state dict (``name -> array``, any size and architecture) to
    this project's, for input normalized with ``mean``/``std``. The architecture (one unit choice per
    unit) is read from the weights and recorded."""
    src = SourceState(state, "official ShuffleNetV2+ state dict")
    if "LastSE.SE_opr.1.weight" not in src or "first_conv.0.weight" not in src:
        raise ValueError("not an official ShuffleNetV2+ state dict: first_conv.0.weight or LastSE.SE_opr.1.weight "
                         "is missing")
    out: Dict[str, np.ndarray] = {}
    stem, options = _stem_and_head(src, out, mean, std, exact_border)
    del options["pool_padding"]  # V2+ has no pool
    channels, repeats, architecture = [stem], [], []
    width = stem
    for unit in range(_units(state)):
        p = f"features.{unit}"
        new_stage = f"{p}.branch_proj.0.weight" in src
        if not new_stage and not repeats:
            raise ValueError(f"official ShuffleNetV2+ state dict: {p} is a stride-1 unit before any stage began")
        choice, unit_out = _plus_unit(src, p, width, new_stage, out)
        if new_stage:
            repeats.append(0)
            channels.append(unit_out)
        elif unit_out != width:
            raise ValueError(f"official ShuffleNetV2+ state dict: {p} outputs {unit_out} channels, its stage {width}")
        width = unit_out
        repeats[-1] += 1
        architecture.append(choice)
    last = src.shape("conv_last.0.weight")[0]
    out["conv_last.0.weight"] = src.take("conv_last.0.weight", (last, width, 1, 1))
    bn(src, "conv_last.1", "conv_last.1", out)
    _plus_se(src, "LastSE", "last_se", last, out)
    out["fc.0.weight"] = src.take("fc.0.weight", (last, last))
    num_classes = src.shape("classifier.0.weight")[0]
    out["classifier.weight"] = src.take("classifier.0.weight", (num_classes, last))
    channels.append(last)
    src.check_all_used()
    options["architecture"] = architecture
    return ConvertedWeights(as_float32(out), "ShuffleNetV2Plus", tuple(channels), tuple(repeats), num_classes,
                            options, source="megvii")


def from_megvii(state: Mapping[str, np.ndarray], mean: Optional[Sequence[float]] = None,
                std: Optional[Sequence[float]] = None, exact_border: bool = True,
                mean_image: Optional[np.ndarray] = None) -> ConvertedWeights:
    """Convert an official V1, V2, V2+ or V2.Large / ExLarge state dict, telling them apart by their names
    (V2.Large needs its ``mean_image``: see :func:`from_megvii_v2_large`)."""
    if any(key.startswith("features.0.branch_main_1.") for key in state):
        return from_megvii_v1(state, mean, std, exact_border)
    if "LastSE.SE_opr.1.weight" in state:
        return from_megvii_v2_plus(state, mean, std, exact_border)
    if "first_conv.0.conv.weight" in state:
        return from_megvii_v2_large(state, mean_image, mean, std, exact_border)
    return from_megvii_v2(state, mean, std, exact_border)
