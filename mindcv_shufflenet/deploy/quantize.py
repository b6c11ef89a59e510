"""INT8 ONNX by static post-training quantization, with onnxruntime's own tooling (``onnxruntime.quantization``).

:func:`quantize_onnx` takes a float ONNX file written by :func:`.exporting.export_model` (BatchNorm already
folded into the convolutions) and:

1. brings it from opset 11 (what MindSpore 2.10 writes) to opset 17 with onnx's version converter: at opset
   11 ``DequantizeLinear`` has no ``axis``, so per-channel weights would give a file that does not load;
2. runs onnxruntime's ``quant_pre_process`` (ONNX shape inference and graph clean-up: constants folded,
   identities removed);
3. runs ``quantize_static``: QDQ format, int8 weights with one scale per output channel, in a 7-bit range
   by default (so that onnxruntime's int8 kernels cannot saturate on x86 CPUs without VNNI), uint8 activations
   whose ranges are calibrated on images preprocessed as ``validate.py`` preprocesses them
   (:func:`calibration_images`), one batch at a time (``CalibStridedMinMax``) so that memory stays bounded;
   the classifier's output (the logits) stays float.

Needs the ``onnx`` and ``onnxruntime`` packages (``pip install -e .[deploy]``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime.quantization as oq
from onnx import version_converter
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..data.folders import unreadable_reason
from .classify import IMAGE_EXTENSIONS, load_image
from .exported import ExportInfo, set_onnx_info

QDQ_OPSET = 17  # the first opset with per-channel DequantizeLinear is 13; 17 is what was tested here
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_FORMATS = ("qdq", "qoperator")
INT8_TYPES = ("uint8", "int8")
DEFAULT_CALIBRATION_IMAGES = 300


@dataclass(frozen=True)
class QuantSettings:
    """How to quantize. The defaults are what export.py --quantize int8 uses (chosen by measurement:
    docs/export-and-deploy.md)."""

    method: str = "minmax"  # activation calibration: minmax, entropy or percentile
    quant_format: str = "qdq"  # qdq (QuantizeLinear/DequantizeLinear pairs) or qoperator (QLinearConv, ...)
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    # Weights in a 7-bit range ([-64, 64]): on x86 CPUs without VNNI, onnxruntime's int8 kernels multiply u8
    # activations by s8 weights with VPMADDUBSW, whose 16-bit pair sums saturate at full range (255 * 127 * 2
    # > 32767); measured there: top-1 78% vs 96% float. 7-bit weights cannot saturate; on other CPUs they
    # cost little (docs/export-and-deploy.md). False (8-bit) is for files that only run where VNNI or ARM
    # kernels do.
    reduce_range: bool = True
    float_op_types: Tuple[str, ...] = ()  # operator types left in float (e.g. ("Gemm",) for the classifier)
    # Operator types whose outputs stay float: the classifier's, so that the logits are not rounded to 256
    # levels (measured: fewer top-1 flips and half the logit error; docs/export-and-deploy.md).
    float_output_op_types: Tuple[str, ...] = ("Gemm",)

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, CALIBRATION_METHODS),
                                     ("quant_format", self.quant_format, QUANT_FORMATS),
                                     ("activation_type", self.activation_type, INT8_TYPES),
                                     ("weight_type", self.weight_type, INT8_TYPES)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")

    def describe(self, images: int) -> str:
        """One line for the file's metadata and the console."""
        weights = "per-channel" if self.per_channel else "per-tensor"
        weights += f" {self.weight_type}{' (7-bit range)' if self.reduce_range else ''}"
        kept = f", {'/'.join(self.float_op_types)} kept float" if self.float_op_types else ""
        outputs = f", float {'/'.join(self.float_output_op_types)} outputs" if self.float_output_op_types else ""
        return (f"int8 static {self.quant_format.upper()}, {weights} weights, "
                f"{self.activation_type} activations{kept}{outputs}, {self.method} calibration on {images} images")


@dataclass(frozen=True)
class CalibrationSet:
    images: np.ndarray  # float32 [N, 3, H, W], preprocessed
    paths: List[Path]
    skipped: List[Tuple[Path, str]]  # (file, why) of the files drawn that could not be read


def calibration_images(folder: str | os.PathLike, count: int, transforms: Sequence, seed: int = 0) -> CalibrationSet:
    """``count`` images drawn at random (``seed``) from the image files under ``folder`` (recursively, so an
    ImageNet-style split with class folders works, and so does a flat folder), each preprocessed by
    ``transforms`` (``data.transforms.eval_transforms``, as validate.py uses them). Files that cannot be
    read are skipped and replaced by others. All the images are used when there are fewer than ``count``.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: ``count`` < 1, or no readable image under ``folder``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"--calib_images must be a positive number of images, got {count!r}")
    root = Path(folder)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise FileNotFoundError(f"calibration folder {what}: {root}: give --calib_dir a folder of images "
                                f"(e.g. a training split)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}: give --calib_dir a folder of "
                         f"images (class subfolders are fine)")
    chosen: List[Path] = []
    images: List[np.ndarray] = []
    skipped: List[Tuple[Path, str]] = []
    for index in np.random.default_rng(seed).permutation(len(files)):
        path = files[int(index)]
        reason = unreadable_reason(path)
        if reason is None:
            try:
                images.append(load_image(path, transforms))
                chosen.append(path)
            except ValueError as err:
                reason = str(err)
        if reason is not None:
            skipped.append((path, reason))
        if len(chosen) == count:
            break
    if not chosen:
        raise ValueError(f"none of the {len(files)} image files under {root} could be read "
                         f"(first: {skipped[0][0]}: {skipped[0][1]}): give --calib_dir a folder of readable images")
    return CalibrationSet(np.stack(images), chosen, skipped)


class ImageBatches(oq.CalibrationDataReader):
    """Calibration batches for ``quantize_static``. ``__len__`` and ``set_range`` let onnxruntime collect
    statistics one batch at a time (``CalibStridedMinMax``) instead of holding every activation of every
    batch in memory; that also lets the histogram methods take a smaller last batch."""

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"calibration batch size must be >= 1, got {batch_size}")
        self.batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
        self.input_name = input_name
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending: Iterator[np.ndarray] = iter(self.batches[start_index:end_index])

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        batch = next(self._pending, None)
        return None if batch is None else {self.input_name: batch}


def convert_opset(source: str | os.PathLike, target: str | os.PathLike, opset: int = QDQ_OPSET) -> Path:
    """Write ``source`` converted to ``opset`` (onnx's version converter, checked by onnx's checker)."""
    model = onnx.load(str(source))
    current = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if current != opset:
        model = version_converter.convert_version(model, opset)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return Path(target)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer prints progress to stdout and advice through the root logger: keep both off the
    console (errors still raise)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize_onnx(float_model: str | os.PathLike, output: str | os.PathLike, images: np.ndarray,
                  settings: QuantSettings = QuantSettings(), info: Optional[ExportInfo] = None,
                  batch_size: int = 16) -> Path:
    """Write an INT8 copy of the float ONNX file ``float_model`` to ``output`` (see the module doc).

    Args:
        images: calibration images, float32 [N, C, H, W], preprocessed as the model expects.
        settings: format, types, calibration method, operators left in float.
        info: recorded in the output's metadata_props (its ``quantization`` is set from ``settings``).
        batch_size: calibration batch size (memory grows with it).
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    types = {"uint8": oq.QuantType.QUInt8, "int8": oq.QuantType.QInt8}
    with tempfile.TemporaryDirectory(prefix="quantize-") as work:
        opset17 = convert_opset(float_model, Path(work) / "opset17.onnx")
        prepared = Path(work) / "prepared.onnx"
        with _quiet():
            quant_pre_process(str(opset17), str(prepared), skip_symbolic_shape=True)
            input_name = onnx.load(str(prepared)).graph.input[0].name
            reader = ImageBatches(images, input_name, batch_size)
            oq.quantize_static(
                str(prepared), str(output), reader,
                quant_format=oq.QuantFormat.QDQ if settings.quant_format == "qdq" else oq.QuantFormat.QOperator,
                op_types_to_quantize=_quantized_op_types(prepared, settings.float_op_types),
                per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                activation_type=types[settings.activation_type], weight_type=types[settings.weight_type],
                calibrate_method={"minmax": oq.CalibrationMethod.MinMax, "entropy": oq.CalibrationMethod.Entropy,
                                  "percentile": oq.CalibrationMethod.Percentile}[settings.method],
                extra_options={"CalibStridedMinMax": 1,
                               "OpTypesToExcludeOutputQuantization": list(settings.float_output_op_types)})
    model = onnx.load(str(output))
    set_onnx_info(model, replace(info or ExportInfo(), quantization=settings.describe(len(images))))
    onnx.save(model, str(output))
    return output


def _quantized_op_types(model_path: Path, float_op_types: Sequence[str]) -> Optional[List[str]]:
    """None (onnxruntime's default: every operator type it can quantize) unless some are to stay float."""
    if not float_op_types:
        return None
    present = {node.op_type for node in onnx.load(str(model_path)).graph.node}
    return sorted(present - set(float_op_types))


@dataclass(frozen=True)
class Agreement:
    """How an INT8 model's logits compare with the float model's on the same images."""

    images: int
    top1_agreement: float  # percent of images with the same top-1 class
    max_abs_diff: float
    mean_abs_diff: float


def compare_logits(float_logits: np.ndarray, int8_logits: np.ndarray) -> Agreement:
    if float_logits.shape != int8_logits.shape:
        raise ValueError(f"logit shapes differ: float {float_logits.shape}, int8 {int8_logits.shape}")
    diff = np.abs(float_logits.astype(np.float64) - int8_logits)
    same = float((float_logits.argmax(1) == int8_logits.argmax(1)).mean())
    return Agreement(len(float_logits), 100 * same, float(diff.max()), float(diff.mean()))
