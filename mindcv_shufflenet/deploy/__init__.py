"""Deployment: exporting a network (MindIR / ONNX / AIR, BatchNorm folded), INT8 ONNX, running exported files
as classifiers, classifying image files, and what the CPU can run correctly.

- :mod:`.exporting`: :func:`export_model`, the network written as a file with a dynamic batch.
- :mod:`.exported`: :class:`ExportInfo` (what a file records about its input) and :func:`load_exported`.
- :mod:`.quantize`: :func:`quantize_onnx`, static INT8 quantization (needs ``onnx`` and ``onnxruntime``:
  ``pip install -e .[deploy]``; its names are imported from here on first use).
- :mod:`.classify`: finding and preprocessing image files, class names, :func:`predict`.
- :mod:`.cpu_features`: the CPU's flags, and whether onnxruntime's int8 kernels saturate on it.
"""

from importlib import import_module
from typing import Any

from .classify import (
    IMAGE_EXTENSIONS,
    Prediction,
    check_embeddings_path,
    find_images,
    imagenet_class_names,
    load_image,
    predict,
    read_class_names,
    resolve_class_names,
    save_embeddings,
    softmax,
    write_class_names,
)
from .cpu_features import (
    SATURATION_FREE_INT8,
    cpu_flags,
    has_full_range_int8_weights,
    int8_kernels_saturate,
    largest_int8_weight,
)
from .exported import (
    ExportedModel,
    ExportInfo,
    describe,
    load_exported,
    mindir_info_writer,
    model_file_format,
    recorded_class_names,
    refuse_feature_extractor,
    set_onnx_info,
    write_onnx_info,
)
from .exporting import FORMATS, ExportResult, export_friendly_pools, export_model, output_names

# onnx and onnxruntime are an optional extra: quantize is imported when one of its names is first asked for.
_QUANTIZE_NAMES = ("QuantSettings", "CalibrationSet", "calibration_images", "quantize_onnx", "compare_logits",
                   "Agreement", "CALIBRATION_METHODS", "QUANT_FORMATS", "INT8_TYPES")

__all__ = [
    "export_model", "export_friendly_pools", "ExportResult", "FORMATS", "output_names",
    "ExportInfo", "ExportedModel", "load_exported", "model_file_format", "describe", "recorded_class_names",
    "set_onnx_info", "write_onnx_info", "mindir_info_writer", "refuse_feature_extractor",
    "find_images", "load_image", "predict", "Prediction", "softmax", "IMAGE_EXTENSIONS",
    "save_embeddings", "check_embeddings_path",
    "imagenet_class_names", "read_class_names", "write_class_names", "resolve_class_names",
    "cpu_flags", "int8_kernels_saturate", "largest_int8_weight", "has_full_range_int8_weights",
    "SATURATION_FREE_INT8", *_QUANTIZE_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _QUANTIZE_NAMES:
        return getattr(import_module(".quantize", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
