"""The official (Megvii) ShuffleNet V2 / V1 / V2+ weights -> this project's layout, with their input
folded in.

Layout. The official V2 is MindCV's network (MindCV ported it): the names map one to one
(``classifier.0`` -> ``classifier``). The official V1 applies its channel shuffle after the depthwise
conv, MindCV before it; a depthwise conv and its BatchNorm act channel by channel, so moving them
behind the shuffle only permutes their channels. The official V2+ names its units' SE
``branch_main.<n>.SE_opr`` (``se`` here, beside ``branch_main``) and its head's ``LastSE`` (``last_se``);
the rest maps one to one. V1 and V2 pad their pools on every side
(``pool_padding="symmetric"``). The official V2.Large / ExLarge name their units' conv + BatchNorm pairs
``conv`` / ``bn`` (``0`` / ``1`` here, within each sequence), Large its units "2a", "2b", ... (their
index here), both their SE layers ``se_fc1`` / ``se_fc2`` (``se.reduce.0`` / ``se.expand``: 1x1 convs),
the auxiliary heads ``predict_56/28/14`` (``aux_heads.0/1/2``) and the classifier ``fc``.

Input. The official code feeds BGR images in 0-255 without mean/std, where this project feeds
``n = (rgb - mean) / std``. With ``rgb = std * n + mean``, the stem conv ``W`` (BGR input channels) on
the official input equals the conv ``W'[:, c] = W[:, 2 - c] * std[c]`` on ``n`` plus the constant
``b = sum W' * mean / std``, which moves into the BatchNorm's moving mean. That is exact where the 3x3
window lies inside the image. At the border the official conv reads zero padding, a black pixel,
which is ``-mean / std`` after normalization, not the 0 this network pads with; no choice of weights
repairs that, because a conv's bias cannot vary with position. So the converted weights record
``stem_pad_value = -mean / std``: the stem conv then pads with the normalized black pixel and the
conversion is exact everywhere (V2.Large: see :func:`from_megvii_v2_large`). ``exact_border=False``
leaves it out (a plain network, MindCV's structure), which changes the stem's output on its first row and
column (and last, for odd sizes).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .common import ConvertedWeights, SourceState, as_float32, bn

__all__ = ["from_megvii_v2", "from_megvii_v1", "from_megvii_v2_plus", "from_megvii_v2_large", "from_megvii",
           "fold_bgr255_stem", "read_mean_image"]

_FEATURE = re.compile(r"^features\.(\d+)\.")


def fold_bgr255_stem(weight: np.ndarray, moving_mean: np.ndarray, mean: Sequence[float],
                     std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray, list]:
    """Fold "BGR, 0-255" into a stem conv ``weight`` [out, 3 (BGR), k, k] and its BatchNorm.

    Returns the conv weight for RGB input normalized by ``mean``/``std`` (0-255 scale, RGB order), the
    BatchNorm moving mean to go with it, and the per-channel padding value (``-mean/std``) that makes
    the result exact at the image border (see the module docstring).
    """
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"the stem conv weight has shape {weight.shape}, expected [out, 3, k, k]")
    rgb_weight = weight[:, ::-1].astype(np.float64) * std[None, :, None, None]
    pad_value = -mean / std
    shift = np.einsum("ochw,c->o", rgb_weight, pad_value)  # the padded conv minus the official one
    return rgb_weight, moving_mean.astype(np.float64) + shift, [float(v) for v in pad_value]


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


def read_mean_image(path) -> np.ndarray:
    """The official V2.Large's mean image (``ImageNet_1000_scale224_mean.xml``, OpenCV's XML storage of a
    224x224 BGR float image; or a ``.npy`` of shape (H, W, 3), BGR) as an (H, W, 3) BGR array."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mean image not found: {path}")
    if path.suffix == ".npy":
        image = np.load(path, allow_pickle=False)
    else:
        text = path.read_text(errors="replace")
        match = re.search(r"<Row>\s*(\d+)\s*</Row>\s*<Col>\s*(\d+)\s*</Col>.*?<data>(.*?)</data>", text, re.S)
        if not match:
            raise ValueError(f"{path} is not the official mean image (OpenCV XML with Row, Col and MeanImg data)")
        rows, cols = int(match[1]), int(match[2])
        values = np.array(match[3].split(), np.float64)
        if values.size != rows * cols * 3:
            raise ValueError(f"{path}: {values.size} values for a {rows}x{cols}x3 image")
        image = values.reshape(rows, cols, 3)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: a mean image must be (height, width, 3), got {image.shape}")
    return image.astype(np.float64)


def _conv_bn(src: SourceState, source: str, target: str, index: int, shape: Tuple[int, ...],
             out: Dict[str, np.ndarray]) -> None:
    """An official ``Conv_BN_ReLU`` (``conv``, ``bn``) -> ``target.<index>`` (conv), ``target.<index + 1>`` (BN)."""
    out[f"{target}.{index}.weight"] = src.take(f"{source}.conv.weight", shape)
    bn(src, f"{source}.bn", f"{target}.{index + 1}", out)


def _large_se(src: SourceState, unit: str, target: str, channels: int, exlarge: bool,
              out: Dict[str, np.ndarray]) -> int:
    """The units' SE (``se_fc1``/``se_fc2``, fully connected; also listed as ``se_block.0``/``.2``) -> 1x1 convs.
    Returns the reduced width."""
    fc = ".fc" if exlarge else ""
    reduced = src.shape(f"{unit}.se_fc1{fc}.weight")[0]
    for source, alias, name, shape in (("se_fc1", "se_block.0", "reduce.0", (reduced, channels)),
                                       ("se_fc2", "se_block.2", "expand", (channels, reduced))):
        for kind, size in (("weight", shape), ("bias", shape[:1])):
            value = src.take(f"{unit}.{source}{fc}.{kind}", size)
            if f"{unit}.{alias}{fc}.{kind}" in src and not np.array_equal(
                    src.take(f"{unit}.{alias}{fc}.{kind}", size), value):
                raise ValueError(f"{src.what}: {unit}.{alias}{fc}.{kind} differs from {unit}.{source}{fc}.{kind}, "
                                 f"the same layer")
            out[f"{target}.{name}.{kind}"] = value.reshape(*size, 1, 1) if kind == "weight" else value
    return reduced


def _large_unit(src: SourceState, unit: str, target: str, width: int, exlarge: bool,
                out: Dict[str, np.ndarray]) -> Tuple[int, int, int, int]:
    """One official Large / ExLarge unit; returns its output channels, groups, stride and SE reduction."""
    project = f"{unit}.proj.conv.weight" in src
    first = src.shape(f"{unit}.branch_main.0.conv.weight")
    main_in = first[1]
    if exlarge:
        c = first[0]
        half = c // 2
        if main_in != (width if project else width // 2):
            raise ValueError(f"{src.what}: {unit}.branch_main.0 reads {main_in} channels, expected "
                             f"{width if project else width // 2}")
        grouped = src.shape(f"{unit}.branch_main.1.conv.weight")
        _conv_bn(src, f"{unit}.branch_main.0", f"{target}.branch_main", 0, (c, main_in, 1, 1), out)
        _conv_bn(src, f"{unit}.branch_main.1", f"{target}.branch_main", 3, grouped, out)
        _conv_bn(src, f"{unit}.branch_main.2", f"{target}.branch_main", 6, (c, 1, 3, 3), out)
        _conv_bn(src, f"{unit}.branch_main.3", f"{target}.branch_main", 8, (half, c, 1, 1), out)
        if project:
            _conv_bn(src, f"{unit}.proj", f"{target}.proj", 0, (c - half, main_in, 3, 3), out)
        groups = c // grouped[1]
    else:
        half = first[0]
        c = 2 * half
        if main_in != width // 2:
            raise ValueError(f"{src.what}: {unit}.branch_main.0 reads {main_in} channels, expected {width // 2}")
        grouped = src.shape(f"{unit}.branch_main.1.conv.weight")
        _conv_bn(src, f"{unit}.branch_main.0", f"{target}.branch_main", 0, (half, main_in, 1, 1), out)
        _conv_bn(src, f"{unit}.branch_main.1", f"{target}.branch_main", 3, grouped, out)
        _conv_bn(src, f"{unit}.branch_main.2", f"{target}.branch_main", 6, (half, half, 1, 1), out)
        if project:
            _conv_bn(src, f"{unit}.proj", f"{target}.proj", 0, (half, main_in, 3, 3), out)
        if f"{unit}.down.conv.weight" in src:
            _conv_bn(src, f"{unit}.down", f"{target}.down", 0, (c, c, 1, 1), out)
        groups = half // grouped[1]
    reduced = _large_se(src, unit, f"{target}.se", half, exlarge, out)
    return c, groups, half // reduced


def _aux_head(src: SourceState, source: str, target: str, width: int, out: Dict[str, np.ndarray]) -> Tuple[int, int]:
    """An official ``ExtraLabelPredict`` -> ``models.shufflenet_v2_large.AuxHead``; returns its width and classes."""
    c = src.shape(f"{source}.conv.0.conv.weight")[0]
    _conv_bn(src, f"{source}.conv.0", f"{target}.conv", 0, (c, width, 1, 1), out)
    _conv_bn(src, f"{source}.conv.1", f"{target}.conv", 3, (c, c, 3, 3), out)
    classes = src.shape(f"{source}.fc.weight")[0]
    out[f"{target}.classifier.weight"] = src.take(f"{source}.fc.weight", (classes, c))
    out[f"{target}.classifier.bias"] = src.take(f"{source}.fc.bias", (classes,))
    return c, classes


def _large_stem(src: SourceState, out: Dict[str, np.ndarray]) -> Tuple[int, ...]:
    """The three stem convs (``first_conv.<k>.conv/bn`` -> ``first_conv.<3k>/<3k+1>``); their widths."""
    widths, cin = [], 3
    for k in range(3):
        c = src.shape(f"first_conv.{k}.conv.weight")[0]
        _conv_bn(src, f"first_conv.{k}", "first_conv", 3 * k, (c, cin, 3, 3), out)
        widths.append(c)
        cin = c
    return tuple(widths)


def _fold_mean_image(out: Dict[str, np.ndarray], mean_image: np.ndarray, mean: Sequence[float],
                     std: Sequence[float]) -> list:
    """Fold "BGR 0-255 minus a per-pixel mean image" into the stem conv and an input offset.

    The official input is ``a = bgr - M``. This network subtracts ``O = (M_rgb - mean) / std`` from its
    normalized input ``n = (rgb - mean) / std``; then ``std * (n - O) = rgb - M_rgb``, which is ``a`` with its
    channels reversed. So the stem conv ``W'[:, c] = W[:, 2 - c] * std[c]`` on ``n - O`` is the official conv
    on ``a``, zero padding included, and nothing moves into the BatchNorm: exact everywhere, for images of
    the mean image's size. Returns that size."""
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    weight = out["first_conv.0.weight"]
    out["first_conv.0.weight"] = weight[:, ::-1] * std[None, :, None, None]
    rgb = mean_image[:, :, ::-1].transpose(2, 0, 1)
    out["input_offset"] = ((rgb - mean[:, None, None]) / std[:, None, None])[None]
    return list(mean_image.shape[:2])


def from_megvii_v2_large(state: Mapping[str, np.ndarray], mean_image: Optional[np.ndarray] = None,
                         mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                         exact_border: bool = True) -> ConvertedWeights:
    """Convert the official ShuffleNetV2.Large or ExLarge state dict (told apart by their names; any widths
    and depths) to this project's, for input normalized with ``mean``/``std``. Auxiliary heads are kept if
    the file has them (``aux_heads`` records it).

    Input. ExLarge takes BGR 0-255 like V2: folded with :func:`fold_bgr255_stem` (``exact_border`` as
    there). Large takes BGR 0-255 minus a per-pixel mean image, ``mean_image`` ((H, W, 3), BGR: see
    :func:`read_mean_image`): folded by :func:`_fold_mean_image` into the stem conv and the network's
    ``input_offset``, which fixes its input size to the mean image's (224x224)."""
    mean = IMAGENET_MEAN if mean is None else mean
    std = IMAGENET_STD if std is None else std
    exlarge = "conv_last.conv.weight" not in state
    what = f"official ShuffleNetV2.{'ExLarge' if exlarge else 'Large'} state dict"
    src = SourceState(state, what)
    if "first_conv.2.conv.weight" not in src or ("fc.fc.weight" if exlarge else "fc.weight") not in src:
        raise ValueError(f"not an {what}: first_conv.2.conv.weight or its classifier is missing")
    if not exlarge and mean_image is None:
        raise ValueError("the official ShuffleNetV2.Large takes BGR 0-255 minus a per-pixel mean image: give it "
                         "(ImageNet_1000_scale224_mean.xml from the official repository; --mean-image)")
    out: Dict[str, np.ndarray] = {}
    stem = _large_stem(src, out)
    options: Dict[str, Any] = {"variant": "exlarge" if exlarge else "large", "pool_padding": "symmetric"}
    if exlarge:
        out["first_conv.0.weight"], out["first_conv.1.moving_mean"], pad_value = fold_bgr255_stem(
            out["first_conv.0.weight"], out["first_conv.1.moving_mean"], mean, std)
        options["stem_pad_value"] = pad_value if exact_border else None
    else:
        options["input_offset"] = _fold_mean_image(out, np.asarray(mean_image, np.float64), mean, std)
    stages, repeats, groups, reductions = [], [], set(), set()
    width = stem[2]
    for stage in range(4):
        prefix = f"features.{stage}"
        names = sorted({key[len(prefix) + 1:].split(".")[0] for key in state if key.startswith(prefix + ".")},
                       key=lambda n: (len(n), n))
        units = [n for n in names if f"{prefix}.{n}.branch_main.0.conv.weight" in src]
        if not units:
            raise ValueError(f"{what}: {prefix} has no units")
        for i, name in enumerate(units):
            if (f"{prefix}.{name}.proj.conv.weight" in src) != (i == 0):
                raise ValueError(f"{what}: {prefix}.{name}: only a stage's first unit has a projection")
            if not exlarge and (f"{prefix}.{name}.down.conv.weight" in src) != (i == 0 and stage > 0):
                raise ValueError(f"{what}: {prefix}.{name}: only the first unit of stages 2-4 has a down conv")
            c, g, r = _large_unit(src, f"{prefix}.{name}", f"features.{stage}.{i}", width, exlarge, out)
            if i and c != width:
                raise ValueError(f"{what}: {prefix}.{name} outputs {c} channels, its stage {width}")
            width = c
            groups.add(g)
            reductions.add(r)
        if exlarge:
            end = str(len(units))
            if f"{prefix}.{end}.conv.weight" not in src:
                raise ValueError(f"{what}: {prefix}.{end}, the stage's closing 1x1 conv, is missing")
            _conv_bn(src, f"{prefix}.{end}", f"features.{stage}.{end}", 0, (width, width, 1, 1), out)
        stages.append(width)
        repeats.append(len(units))
    if len(groups) != 1 or len(reductions) != 1:
        raise ValueError(f"{what}: the units' groups {sorted(groups)} and SE reductions {sorted(reductions)} "
                         f"must each be one number")
    channels = [*stem, *stages]
    if exlarge:
        num_classes = src.shape("fc.fc.weight")[0]
        out["classifier.weight"] = src.take("fc.fc.weight", (num_classes, width))
        out["classifier.bias"] = src.take("fc.fc.bias", (num_classes,))
    else:
        last = src.shape("conv_last.conv.weight")[0]
        _conv_bn(src, "conv_last", "conv_last", 0, (last, width, 3, 3), out)
        channels.append(last)
        num_classes = src.shape("fc.weight")[0]
        out["classifier.weight"] = src.take("fc.weight", (num_classes, last))
        out["classifier.bias"] = src.take("fc.bias", (num_classes,))
    heads = [f"predict_{size}" for size in (56, 28, 14)]
    options["aux_heads"] = all(f"{h}.fc.weight" in src for h in heads)
    if options["aux_heads"]:
        aux_channels = []
        for i, (head, stage_width) in enumerate(zip(heads, stages)):
            c, classes = _aux_head(src, head, f"aux_heads.{i}", stage_width, out)
            if classes != num_classes:
                raise ValueError(f"{what}: {head} has {classes} classes, the classifier {num_classes}")
            aux_channels.append(c)
        options["aux_channels"] = aux_channels
    elif any(key.startswith(tuple(heads)) for key in state):
        raise ValueError(f"{what}: some auxiliary heads (predict_56/28/14) are incomplete")
    src.check_all_used()
    options["se_reduction"] = reductions.pop()
    return ConvertedWeights(as_float32(out), "ShuffleNetV2Large", tuple(channels), tuple(repeats), num_classes,
                            options, groups=groups.pop(), source="megvii")


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
