"""Exported models (ONNX, MindIR) used as classifiers: the settings an export records in the file, and
loading a file for ``validate.py --model_file`` and ``infer.py --model_file``.

``export.py`` records how the model's input is made (:class:`ExportInfo`: model name, number of classes,
image size, mean / std, crop_pct, interpolation, channel order, class names; for INT8 files also how they
were quantized) in the file itself: ONNX ``metadata_props`` (needs the ``onnx`` package to write; onnxruntime
reads it back), MindIR ``user_info``. Every value is stored as JSON under a key ``mindcv_shufflenet.<name>``.

:func:`load_exported` opens a file as an :class:`ExportedModel`: ONNX through onnxruntime (CPU), MindIR
through MindSpore (``nn.GraphCell``) on the current device. It is called like a network, on a batch of
preprocessed images, and returns the logits as a NumPy array.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .cpu_features import (
    SATURATION_FREE_INT8,
    cpu_flags,
    has_full_range_int8_weights,
    int8_kernels_saturate,
    largest_int8_weight,
)

logger = logging.getLogger(__name__)

INFO_PREFIX = "mindcv_shufflenet."
MODEL_FILE_SUFFIXES = {".onnx": "ONNX", ".mindir": "MINDIR"}


@dataclass(frozen=True)
class ExportInfo:
    """What an exported file records about its input and output (None: not recorded)."""

    model: Optional[str] = None
    num_classes: Optional[int] = None
    image_size: Optional[int] = None
    mean: Optional[Tuple[float, ...]] = None  # 0-255 scale, RGB (data.transforms' convention)
    std: Optional[Tuple[float, ...]] = None
    crop_pct: Optional[float] = None
    interpolation: Optional[str] = None
    channel_order: Optional[str] = None  # "RGB" or "BGR": the order of mean / std and of the input's channels
    class_names: Optional[Tuple[str, ...]] = None
    quantization: Optional[str] = None  # e.g. "int8 static QDQ, per-channel weights, minmax calibration on 300 images"
    out_indices: Optional[Tuple[int, ...]] = None  # a features_only network's feature indices (no classifier)

    def to_properties(self) -> Dict[str, str]:
        """``{"mindcv_shufflenet.<field>": JSON}`` for every field that is set."""
        return {INFO_PREFIX + key: json.dumps(value) for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_properties(cls, properties: Mapping[str, str], source: str | os.PathLike) -> ExportInfo:
        """Read the fields back from a file's properties; other keys are ignored.

        Raises:
            ValueError: a recorded value that is not valid JSON of the right kind (names the file and key).
        """
        values: Dict[str, Any] = {}
        for field in fields(cls):
            text = properties.get(INFO_PREFIX + field.name)
            if text is None:
                continue
            try:
                values[field.name] = _checked_value(field.name, json.loads(text))
            except (ValueError, TypeError):
                raise ValueError(f"{source}: recorded {INFO_PREFIX + field.name} is not valid ({text[:60]!r}): "
                                 f"export the model again with export.py") from None
        return cls(**values)


def _checked_value(name: str, value: Any) -> Any:
    if name in ("num_classes", "image_size"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(name)
        return value
    if name in ("mean", "std"):
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
            raise ValueError(name)
        return tuple(float(v) for v in value)
    if name == "crop_pct":
        if not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(name)
        return float(value)
    if name == "class_names":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(name)
        return tuple(value)
    if name == "out_indices":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(name)
        return tuple(value)
    if not isinstance(value, str):
        raise ValueError(name)
    return value


def set_onnx_info(model: Any, info: ExportInfo) -> None:
    """Put ``info`` into an ``onnx.ModelProto``'s ``metadata_props`` (replacing earlier values of its keys)."""
    properties = info.to_properties()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in properties]
    del model.metadata_props[:]
    for key, value in kept + sorted(properties.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def write_onnx_info(path: str | os.PathLike, info: ExportInfo) -> bool:
    """Record ``info`` in an ONNX file in place. Returns False (and leaves the file) without the onnx package."""
    try:
        import onnx
    except ImportError:
        return False
    model = onnx.load(str(path))
    set_onnx_info(model, info)
    onnx.save(model, str(path))
    return True


def mindir_info_writer(info: ExportInfo) -> Callable[[Any], None]:
    """A ``custom_func`` for ``ms.export(..., file_format="MINDIR")`` that records ``info`` in ``user_info``."""
    properties = info.to_properties()

    def record(model_proto: Any) -> None:
        for key, value in properties.items():
            model_proto.user_info[key] = value

    return record


@dataclass
class ExportedModel:
    """An exported classifier, called like the network: ``model(images) -> logits`` (NumPy, float32).

    ``images`` is float32 [N, C, H, W] (a NumPy array or a MindSpore Tensor). A file with a fixed batch
    size runs any N: the batch is cut into pieces of that size and the last one padded.
    """

    path: Path
    file_format: str  # "ONNX" or "MINDIR"
    batch_size: Optional[int]  # the file's fixed batch size; None: dynamic
    input_shape: Tuple[int, int, int]  # (channels, height, width)
    num_classes: Optional[int]  # from the output shape, else the recorded info; None: unknown until run
    info: ExportInfo
    run: Callable[[np.ndarray], np.ndarray]

    @property
    def runtime_name(self) -> str:
        return "onnxruntime" if self.file_format == "ONNX" else "MindSpore"

    def set_train(self, mode: bool = False) -> None:
        """Exported graphs are inference-only; present so that the file stands in for a network."""
        if mode:
            raise ValueError(f"{self.path} is an exported inference graph and cannot be trained")

    def __call__(self, images: Any) -> np.ndarray:
        x = np.ascontiguousarray(images.asnumpy() if hasattr(images, "asnumpy") else images, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            c, h, w = self.input_shape
            raise ValueError(f"{self.path} takes images of shape [batch, {c}, {h}, {w}], got {list(x.shape)}")
        if self.batch_size is None or len(x) == self.batch_size:
            return np.asarray(self.run(x))
        pieces = []
        for start in range(0, len(x), self.batch_size):
            piece = x[start:start + self.batch_size]
            padding = self.batch_size - len(piece)
            if padding:
                piece = np.concatenate([piece, np.zeros((padding, *piece.shape[1:]), np.float32)])
            pieces.append(np.asarray(self.run(piece))[:self.batch_size - padding])
        return np.concatenate(pieces)

    def check_fits(self, image_size: int, num_classes: Optional[int] = None, data_classes: Optional[int] = None,
                   data_folder: str | os.PathLike = "") -> None:
        """Raise a ValueError naming the fix when the preprocessing or the data do not fit this file."""
        channels, height, width = self.input_shape
        if channels != 3:
            raise ValueError(f"{self.path} takes {channels}-channel images, but the preprocessing gives RGB (3 "
                             f"channels): export the model with in_channels 3")
        if (height, width) != (image_size, image_size):
            fix = (f"set --image_resize {height}" if height == width else
                   "this preprocessing (a square center crop) cannot give non-square images")
            raise ValueError(f"{self.path} takes {channels}x{height}x{width} images, but the preprocessing gives "
                             f"{image_size}x{image_size}: {fix}")
        if num_classes is not None and self.num_classes is not None and num_classes != self.num_classes:
            raise ValueError(f"{self.path} outputs {self.num_classes} classes, not --num_classes {num_classes}: "
                             f"leave --num_classes out or give {self.num_classes}")
        if data_classes is not None and self.num_classes is not None and data_classes > self.num_classes:
            raise ValueError(f"{data_folder} has {data_classes} class folders but {self.path} outputs "
                             f"{self.num_classes} classes: check --data_dir and --val_split, or use a model "
                             f"exported for {data_classes} classes")


def model_file_format(path: str | os.PathLike) -> str:
    """"ONNX" or "MINDIR" from the file name; a FileNotFoundError / ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    file_format = MODEL_FILE_SUFFIXES.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"{path}: not a model file this project runs (give a .onnx or .mindir file written by "
                         f"export.py; a .ckpt goes to --ckpt_path)")
    return file_format


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """Open an exported model (``.onnx`` through onnxruntime, ``.mindir`` through MindSpore).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a model file, not a single image input [batch, C, H, W] with a [batch, classes]
            output, or metadata that cannot be read; the message names the file.
    """
    path = Path(path)
    file_format = model_file_format(path)
    if file_format == "ONNX":
        return _load_onnx(path)
    return _load_mindir(path)


def _load_onnx(path: Path) -> ExportedModel:
    try:
        import onnxruntime
    except ImportError:
        raise ValueError(f"running {path} needs onnxruntime: pip install onnxruntime") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        reason = _first_line(err).split(" failed:")[-1]  # onnxruntime: "[...] Load model from PATH failed:WHY"
        raise ValueError(f"{path} is not an ONNX model onnxruntime can load ({reason}): give a file written by "
                         f"export.py --file_format ONNX") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    info = ExportInfo.from_properties(session.get_modelmeta().custom_metadata_map, path)
    refuse_feature_extractor(path, info, [o.name for o in outputs])
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].type != "tensor(float)":
        raise ValueError(f"{path} is not an image classifier: expected one float32 input [batch, 3, H, W] and one "
                         f"output [batch, classes], got inputs {[(i.name, i.type) for i in inputs]} and "
                         f"{len(outputs)} output(s)")
    if int8_kernels_saturate(cpu_flags()):
        _warn_if_full_range_int8(path, info.quantization)
    input_name = inputs[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    return _exported(path, "ONNX", inputs[0].shape, outputs[0].shape, info, run)


FEATURE_OUTPUT_PREFIX = "feature_"  # export.py names a features_only network's outputs feature_<index>


def refuse_feature_extractor(path: Path, info: ExportInfo, output_names: Sequence[str]) -> None:
    """A ValueError (one line) for a file exported from a ``features_only`` network: it has no classifier,
    so it cannot be validated or classify images."""
    maps = [name[len(FEATURE_OUTPUT_PREFIX):] for name in output_names if name.startswith(FEATURE_OUTPUT_PREFIX)]
    maps = [int(index) for index in maps if index.isdigit()]
    if info.out_indices is None and not maps:
        return
    indices = list(info.out_indices) if info.out_indices is not None else maps
    raise ValueError(f"{path} is a feature extractor (exported with --features_only, out_indices {indices}), not a "
                     f"classifier: validate.py and infer.py need a file exported without --features_only")


def _warn_if_full_range_int8(path: Path, quantization: str) -> None:
    largest = largest_int8_weight(path)
    if has_full_range_int8_weights(largest, quantization):
        found = f"int8 weights up to {largest}" if largest is not None else "int8 weights in the full 8-bit range"
        logger.warning(f"{path} has {found} (more than {SATURATION_FREE_INT8}), and this CPU (x86 without VNNI) "
                       f"runs them with onnxruntime kernels that saturate: outputs can be far from the float "
                       f"model's (measured: top-1 78% vs 96%); re-export with export.py --quantize int8 (7-bit "
                       f"weights), or quantize with reduce_range or uint8 weights")


def _load_mindir(path: Path) -> ExportedModel:
    """The graph itself is loaded by MindSpore at the first call, after the caller has chosen the device."""
    proto = _read_mindir_proto(path)
    input_dims = [list(t.dims) for t in proto.graph.input[0].tensor]
    output_dims = [list(t.dims) for t in proto.graph.output[0].tensor] if len(proto.graph.output) else [[]]
    info = ExportInfo.from_properties(dict(proto.user_info), path)
    refuse_feature_extractor(path, info, [])
    if len(proto.graph.output) != 1 or len(proto.graph.output[0].tensor) != 1:  # a tuple has no tensor here
        raise ValueError(f"{path} is not an image classifier: its output is not one [batch, classes] tensor (a feature "
                         f"extractor?): validate.py and infer.py need a classifier exported with export.py")
    loaded: List[Any] = []

    def run(x: np.ndarray) -> np.ndarray:
        import mindspore as ms

        if not loaded:
            try:
                loaded.append(ms.nn.GraphCell(ms.load(str(path))))
            except (RuntimeError, ValueError) as err:
                raise ValueError(f"MindSpore cannot load {path} as MindIR ({_first_line(err)}): export it again "
                                 f"with export.py --file_format MINDIR") from None
        return loaded[0](ms.Tensor(x)).asnumpy()

    return _exported(path, "MINDIR", input_dims[0], output_dims[0] if output_dims else [], info, run)


def _read_mindir_proto(path: Path) -> Any:
    """The MindIR file parsed as MindSpore's ModelProto, checked to hold a graph with one input (before
    ``ms.load``, which logs C++ errors for files that are not MindIR)."""
    from google.protobuf.message import DecodeError
    from mindspore.train.mind_ir_pb2 import ModelProto

    proto = ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeWarning, ValueError):
        proto = None
    if proto is None or len(proto.graph.input) != 1 or not proto.graph.input[0].tensor:
        raise ValueError(f"{path} is not a MindIR model with one input: give a file written by export.py "
                         f"--file_format MINDIR")
    return proto


def _exported(path: Path, file_format: str, input_shape: Sequence[Any], output_shape: Sequence[Any],
              info: ExportInfo, run: Callable[[np.ndarray], np.ndarray]) -> ExportedModel:
    dims = [_static(d) for d in input_shape]
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        raise ValueError(f"{path} is not an image classifier: its input has shape {list(input_shape)}, expected "
                         f"[batch, 3, H, W] with fixed C, H, W")
    out = [_static(d) for d in output_shape]
    if len(out) > 2:
        raise ValueError(f"{path} is not an image classifier: its output has shape {list(output_shape)}, expected "
                         f"[batch, classes] (a feature map: exported with features_only?)")
    num_classes = out[1] if len(out) == 2 and out[1] is not None else info.num_classes
    if info.num_classes is not None and num_classes != info.num_classes:
        raise ValueError(f"{path} outputs {num_classes} classes but records num_classes={info.num_classes}: "
                         f"the file was changed after export; export it again")
    return ExportedModel(path, file_format, dims[0], (dims[1], dims[2], dims[3]), num_classes, info, run)


def _static(dim: Any) -> Optional[int]:
    """A fixed dimension as an int; a dynamic one (a name, None, or -1 in MindIR) as None."""
    return int(dim) if isinstance(dim, (int, np.integer)) and int(dim) > 0 else None


def _first_line(err: object) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0].rstrip(".")[:200] if lines else type(err).__name__


def describe(model: ExportedModel) -> str:
    """``ONNX INT8`` / ``MINDIR float32``-style summary for log lines."""
    kind = "INT8" if model.info.quantization else "float32"
    return f"{model.file_format} {kind}"


def recorded_class_names(model: ExportedModel) -> Optional[List[str]]:
    return list(model.info.class_names) if model.info.class_names else None
