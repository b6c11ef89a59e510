"""Deployment: BatchNorm folded into the convolutions, and MindIR / ONNX / AIR files with a dynamic batch.

The exported graph takes what the network takes: float32 [batch, 3, H, W], RGB normalized with
ImageNet's mean/std (``data.transforms.eval_transforms``), and returns the logits [batch, classes]; a
``features_only`` network returns one output per feature map instead, named ``feature_<index>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from .. import runtime
from ..kernels import use_native_kernels
from ..models.fusion import fold_batchnorm
from .exported import ExportInfo, mindir_info_writer, write_onnx_info

FORMATS = ("MINDIR", "ONNX", "AIR")
SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
INPUT_NAME, OUTPUT_NAME = "image", "logits"
FEATURE_OUTPUT = "feature_{}"  # a features_only network's outputs, by feature index


def output_names(net: nn.Cell) -> List[str]:
    """The exported outputs' names: "logits", or ``feature_<index>`` per map of a ``features_only`` network."""
    if getattr(net, "features_only", False):
        return [FEATURE_OUTPUT.format(index) for index in net.out_indices]
    return [OUTPUT_NAME]


class PaddedPool(nn.Cell):
    """A zero ``Pad`` of one on every side, then ``pool`` (unpadded)."""

    def __init__(self, pool: nn.Cell) -> None:
        super().__init__()
        self.pad = ops.Pad(((0, 0), (0, 0), (1, 1), (1, 1)))
        self.pool = pool

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return self.pool(self.pad(x))


def export_friendly_pools(net: nn.Cell) -> int:
    """Replace the symmetric pools (``pool_padding="symmetric"``) by an explicit zero ``Pad`` and an
    unpadded pool, in place. Returns how many were replaced.

    MindSpore's padded pools compile to 3-D pooling ops that its ONNX exporter does not know. Zero padding
    is what the average pool counts (``count_include_pad=True``); for the max pool it equals the proper
    -inf padding because in these networks the max pool reads the stem's ReLU output (>= 0), which is
    checked here. The results are the same as before. The CPU fast kernels' pools are first switched
    back to MindSpore's (``kernels.use_native_kernels``).
    """
    use_native_kernels(net)
    replaced = 0
    for parent_name, parent in list(net.cells_and_names()):
        for name, child in list(parent.name_cells().items()):
            if not getattr(child, "symmetric_padding", 0):
                continue
            if isinstance(child, nn.MaxPool2d):
                stem = getattr(parent, "first_conv", None)
                if parent_name or name != "max_pool" or not (isinstance(stem, nn.SequentialCell)
                                                            and isinstance(stem[len(stem) - 1], nn.ReLU)):
                    raise ValueError(f"cannot export {parent_name}.{name}: a symmetric max pool that may read "
                                     f"negative values has no ONNX form here")
                new = PaddedPool(nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid"))
            elif isinstance(child, nn.AvgPool2d):
                new = PaddedPool(nn.AvgPool2d(kernel_size=3, stride=2, pad_mode="valid"))
            else:
                continue
            setattr(parent, name, new)
            replaced += 1
    return replaced


@dataclass(frozen=True)
class ExportResult:
    path: Path
    file_format: str
    folded_batchnorms: int
    max_abs_diff: Optional[float]  # exported file vs the original network, on a random batch; None: not checked
    checked_with: str
    info_recorded: bool = False  # the ExportInfo is in the file (ONNX needs the onnx package to write it)


def export_model(net: nn.Cell, file_name: str | os.PathLike, file_format: str = "MINDIR", image_size: int = 224,
                 batch_size: Optional[int] = None, fold_bn: bool = True, check: bool = True,
                 in_channels: int = 3, info: Optional[ExportInfo] = None) -> ExportResult:
    """Export ``net`` for inference, by default with BatchNorm folded and a dynamic batch.

    Args:
        net: the network; changed in place (BatchNorm folded, symmetric pools rewritten, eval mode).
        file_name: output path; the format's suffix (.mindir, .onnx, .air) is added if missing.
        file_format: "MINDIR" or "ONNX" on any device, "AIR" on Ascend only.
        image_size: height and width of the input.
        batch_size: a fixed batch; None (default) leaves the batch axis dynamic.
        fold_bn: fold BatchNorm into the convolutions first (:func:`fold_batchnorm`).
        check: run the exported file (MindIR reloaded in MindSpore, ONNX in onnxruntime if installed) on
            a random batch and report the largest difference from the original network's outputs.
        info: what to record in the file about its input and output (:class:`ExportInfo`: model name,
            classes, preprocessing): ONNX ``metadata_props`` (when the onnx package is installed), MindIR
            ``user_info``. Not recorded in AIR.

    Raises:
        ValueError: unknown format, AIR off Ascend, or bad sizes.
    """
    file_format = str(file_format).upper()
    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}: choose one of {', '.join(FORMATS)}")
    device = runtime.current_device()
    if file_format == "AIR" and device != "Ascend":
        raise ValueError(f"AIR export needs an Ascend device (running on {device}): export MINDIR or ONNX "
                         f"here, or run on an Ascend machine with --device Ascend")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 (five stride-2 stages), got {image_size}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(file_name)
    if path.suffix.lower() != SUFFIXES[file_format]:
        path = path.with_name(path.name + SUFFIXES[file_format])
    path.parent.mkdir(parents=True, exist_ok=True)

    net.set_train(False)
    probe = np.random.default_rng(0).standard_normal((batch_size or 2, in_channels, image_size, image_size))
    probe = probe.astype(np.float32)
    previous_mode = runtime.current_mode()
    runtime.set_mode("graph")
    try:
        expected = _as_arrays(net(ms.Tensor(probe))) if check else None
        use_native_kernels(net)  # custom CPU operators have no MindIR / ONNX form
        folded = fold_batchnorm(net) if fold_bn else 0
        export_friendly_pools(net)
        spec = ms.Tensor(shape=[batch_size, in_channels, image_size, image_size], dtype=ms.float32)
        recorded = _write(net, spec, path, file_format, batch_size, info, output_names(net))
        diff, checked_with = None, "not checked"
        if check:
            diff, checked_with = _check_export(path, file_format, probe, expected)
    finally:
        runtime.set_mode(previous_mode)
    return ExportResult(path, file_format, folded, diff, checked_with, recorded)


class SeparateOutputs(nn.Cell):
    """``net`` with each output passed through an Identity. MindSpore's ONNX exporter renames the node that
    computes a named graph output but not its other readers: a feature map that the next stage also reads
    would leave the file referring to a node that no longer exists (onnxruntime: "Invalid model")."""

    def __init__(self, net: nn.Cell) -> None:
        super().__init__(auto_prefix=False)  # the initializers keep the network's parameter names
        self.net = net
        self.identity = ops.Identity()

    def construct(self, x: ms.Tensor):
        outputs = ()
        for output in self.net(x):
            outputs = outputs + (self.identity(output),)
        return outputs


def _as_arrays(outputs) -> List[np.ndarray]:
    """The network's output(s) as a list of arrays (a ``features_only`` network gives a tuple of maps)."""
    return [t.asnumpy() for t in outputs] if isinstance(outputs, (tuple, list)) else [outputs.asnumpy()]


def _write(net: nn.Cell, spec: ms.Tensor, path: Path, file_format: str, batch_size: Optional[int],
           info: Optional[ExportInfo], outputs: Sequence[str]) -> bool:
    """Write the file; returns whether ``info`` was recorded in it."""
    if file_format == "ONNX":
        target = SeparateOutputs(net) if len(outputs) > 1 else net
        ms.onnx.export(target, spec, file_name=str(path), input_names=[INPUT_NAME], output_names=list(outputs),
                       dynamic_axes={} if batch_size else {INPUT_NAME: {0: "batch"}})
    elif file_format == "MINDIR" and info is not None:
        ms.export(net, spec, file_name=str(path.with_suffix("")), file_format=file_format,
                  custom_func=mindir_info_writer(info))
    else:
        ms.export(net, spec, file_name=str(path.with_suffix("")), file_format=file_format)
    if not path.is_file():
        raise ValueError(f"MindSpore did not write {path}")
    if info is None or file_format == "AIR":
        return False
    return write_onnx_info(path, info) if file_format == "ONNX" else True


def _largest_difference(got: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> float:
    if len(got) != len(expected):
        raise ValueError(f"the exported file gives {len(got)} outputs, the network {len(expected)}")
    return max(float(np.abs(g - e).max()) for g, e in zip(got, expected))


def _check_export(path: Path, file_format: str, probe: np.ndarray,
                  expected: Sequence[np.ndarray]) -> Tuple[Optional[float], str]:
    if file_format == "MINDIR":
        graph = ms.nn.GraphCell(ms.load(str(path)))
        got = _as_arrays(graph(ms.Tensor(probe)))
        return _largest_difference(got, expected), "MindSpore (reloaded MindIR)"
    if file_format == "ONNX":
        try:
            import onnxruntime
        except ImportError:
            return None, "not checked (pip install onnxruntime to check)"
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: probe})
        return _largest_difference(got, expected), "onnxruntime"
    return None, "not checked (AIR runs on Ascend's inference stack)"
