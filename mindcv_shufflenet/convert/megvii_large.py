"""The official (Megvii) ShuffleNetV2.Large / ExLarge weights -> this project's layout, input folded in.

Layout. The official code names its conv + BatchNorm pairs ``conv`` / ``bn`` (``<i>`` / ``<i + 1>`` here,
within each sequence), V2.Large its units "2a", "2b", ... (their index here), both their SE layers
``se_fc1`` / ``se_fc2`` (``se.reduce.0`` / ``se.expand``, 1x1 convs; PyTorch also lists them as
``se_block.0`` / ``.2``), the auxiliary heads ``predict_56/28/14`` (``aux_heads.0/1/2``) and the classifier
``fc``. Input: ExLarge takes BGR 0-255 like V2 (folded as in ``convert.megvii``); Large takes BGR 0-255 minus
a per-pixel mean image (:func:`_fold_mean_image`).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from .common import ConvertedWeights, SourceState, as_float32, bn, fold_bgr255_stem

__all__ = ["from_megvii_v2_large", "read_mean_image"]


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


def _large_stages(src: SourceState, state: Mapping[str, np.ndarray], width: int, exlarge: bool,
                  out: Dict[str, np.ndarray]) -> Tuple[list, list, int, int]:
    """The four stages' units (and ExLarge's closing convs); returns their widths, units, groups, SE reduction."""
    what = src.what
    stages, repeats, groups, reductions = [], [], set(), set()
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
    return stages, repeats, groups.pop(), reductions.pop()


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
    stages, repeats, groups, reduction = _large_stages(src, state, stem[2], exlarge, out)
    width = stages[-1]
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
    options["se_reduction"] = reduction
    return ConvertedWeights(as_float32(out), "ShuffleNetV2Large", tuple(channels), tuple(repeats), num_classes,
                            options, groups=groups, source="megvii")
