"""What the CPU under an exported INT8 model can run correctly: its feature flags, and whether onnxruntime's
int8 kernels can saturate there (x86 without VNNI), which an ONNX file's weights then must stay clear of."""

from __future__ import annotations

import os
import platform
from typing import Optional

import numpy as np


def cpu_flags() -> Optional[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo) on x86; None elsewhere or when they cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1] for line in cpuinfo if line.startswith("flags")), None)
    except OSError:
        return None


# Signed 8-bit weights within [-64, 64] (7 bits) keep onnxruntime's u8 x s8 pair sums inside int16.
SATURATION_FREE_INT8 = 64


def int8_kernels_saturate(flags: Optional[str]) -> bool:
    """Whether onnxruntime's int8 kernels can saturate on an x86 CPU with ``flags``: without VNNI, u8 x s8
    products are summed in pairs into 16 bits (VPMADDUBSW). False when the flags are unknown (not x86)."""
    return flags is not None and not {"avx512_vnni", "avx_vnni"} & set(flags.split())


def largest_int8_weight(path: str | os.PathLike) -> Optional[int]:
    """The largest magnitude among an ONNX file's signed 8-bit weights (INT8 initializers of rank >= 2; scalars
    and per-channel zero points are left out): 0 when it has none; None without the onnx package, or when the
    file cannot be read by it."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(path))
    except Exception:  # onnxruntime opened the file; the check must never stop it from running
        return None
    largest = 0
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) >= 2:
            values = numpy_helper.to_array(tensor).astype(np.int16)  # int16: |-128| does not fit int8
            largest = max(largest, int(np.abs(values).max(initial=0)))
    return largest


def has_full_range_int8_weights(largest_weight: Optional[int], quantization: str) -> bool:
    """Whether a file's signed 8-bit weights leave the 7-bit range: from their values when they could be read
    (``largest_weight``), else from the recorded description (files written before the 7-bit default, or with
    --weight_bits 8, say "int8 weights" without "(7-bit range)")."""
    if largest_weight is not None:
        return largest_weight > SATURATION_FREE_INT8
    return " int8 weights" in f" {quantization}"
