"""The CPU fast path: ``cpu_kernels.cc`` compiled once and called as MindSpore custom operators.

On a CPU, MindSpore 2.10's kernels for the depthwise 3x3 convolution (above all its gradients) and for
the max pool's gradient take about half of a ShuffleNet training step. The kernels in
``cpu_kernels.cc`` compute the same values (to float32 rounding; the max pool exactly) several times
faster; V1's average pool is there too. They are used when all of these hold, else MindSpore's own
kernels are:

- the device is the CPU (on Ascend MindSpore's kernels are the fast ones) and the input float32;
- ``MINDCV_SHUFFLENET_CPU_KERNELS`` is not ``0`` (``1`` makes an unavailable fast path an error);
- a C++ compiler (``$CXX``, else ``g++``) built the library. It is built on first use into
  ``$MINDCV_SHUFFLENET_CACHE`` (default ``~/.cache/mindcv_shufflenet``), keyed by the source, the flags,
  the compiler and the CPU, and reused after that.

The choice is made when a network is built (``layers.DepthwiseConv2d``, ``layers.Pool3x3``), so a
graph never switches mid-run. ``use_native_kernels(net)`` switches a built network back to MindSpore's
kernels (``export.py`` does, since custom operators cannot be exported).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Tuple

SOURCE = Path(__file__).with_name("cpu_kernels.cc")
ENV_SWITCH = "MINDCV_SHUFFLENET_CPU_KERNELS"
ENV_CACHE = "MINDCV_SHUFFLENET_CACHE"
# -fassociative-math (and what it requires) lets the compiler vectorize the weight-gradient sums;
# no -ffast-math, which would also assume that no value is NaN or infinite (loss scaling relies on them).
CXX_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
             "-fno-trapping-math", "-pthread", "-shared", "-fPIC", "-std=c++17")

logger = logging.getLogger(__name__)
_forced_off = 0  # > 0 inside native_kernels()


class KernelBuildError(RuntimeError):
    """The fast path was required (``MINDCV_SHUFFLENET_CPU_KERNELS=1``) but could not be built."""


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return platform.machine() + "\n" + "\n".join(sorted(set(lines)))


def _compiler() -> Optional[str]:
    return shutil.which(os.environ.get("CXX", "g++"))


def _cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "mindcv_shufflenet")


def _build(compiler: str) -> str:
    """Compile the kernels (or find them compiled) and return the library's path."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    key = hashlib.sha256("\n".join([SOURCE.read_text(), " ".join(CXX_FLAGS), version, _cpu_signature()])
                         .encode()).hexdigest()[:16]
    library = _cache_dir() / f"cpu_kernels-{key}.so"
    if library.is_file():
        return str(library)
    library.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, then rename: concurrent processes (msrun workers) never see half a file
    fd, partial = tempfile.mkstemp(prefix=library.name + ".", suffix=".partial", dir=library.parent)
    os.close(fd)
    try:
        result = subprocess.run([compiler, *CXX_FLAGS, "-o", partial, str(SOURCE)], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise KernelBuildError(f"{compiler} could not build {SOURCE.name}: {result.stderr.strip()[:2000]}")
        os.chmod(partial, 0o755)
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return str(library)


def _switch() -> str:
    value = os.environ.get(ENV_SWITCH, "auto").strip().lower()
    if value in ("1", "true", "on", "yes"):
        return "on"
    if value in ("0", "false", "off", "no"):
        return "off"
    if value in ("", "auto"):
        return "auto"
    raise ValueError(f"{ENV_SWITCH}={value!r} is not understood: use 1 (required), 0 (off) or auto")


@functools.cache
def _library(compiler: Optional[str]) -> Tuple[Optional[str], str]:
    """(library path, "") or (None, why not); built at most once per process and compiler."""
    try:
        if compiler is None:
            raise KernelBuildError(f"no C++ compiler found ({os.environ.get('CXX', 'g++')}): install g++ or set CXX")
        return _build(compiler), ""
    except (KernelBuildError, OSError) as err:
        return None, str(err)


def library_path() -> Optional[str]:
    """The compiled kernel library, building it if needed; None when it cannot be built (no compiler,
    a failed build; a warning says why) unless ``MINDCV_SHUFFLENET_CPU_KERNELS=1`` makes that an error."""
    path, error = _library(_compiler())
    if path is None:
        if _switch() == "on":
            raise KernelBuildError(f"{ENV_SWITCH}=1 but the CPU kernels are unavailable: {error}")
        _warn_once(f"CPU fast kernels unavailable, using MindSpore's own (slower) kernels: {error}")
    return path


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)


def enabled() -> bool:
    """Whether networks built now use the fast CPU kernels (see the module's docstring)."""
    if _forced_off or _switch() == "off":
        return False
    import mindspore as ms

    if ms.get_context("device_target") != "CPU":
        return False
    return library_path() is not None


@contextlib.contextmanager
def native_kernels() -> Iterator[None]:
    """Networks built inside this block use MindSpore's own kernels."""
    global _forced_off
    _forced_off += 1
    try:
        yield
    finally:
        _forced_off -= 1


def use_native_kernels(net) -> int:
    """Switch every layer of a built network back to MindSpore's own kernels, in place: fast layers
    that hold a ``native`` cell are replaced by it, the others drop their ``cpu_op``. Returns how many
    layers were switched."""
    switched = 0
    for _, parent in list(net.cells_and_names()):
        for name, child in list(parent.name_cells().items()):
            if getattr(child, "cpu_op", None) is None:
                continue
            if getattr(child, "native", None) is not None:
                if name.isdigit():  # a SequentialCell's item
                    parent[int(name)] = child.native
                else:
                    setattr(parent, name, child.native)
            else:
                child.cpu_op = None
            switched += 1
    return switched


# ---- the operators ---------------------------------------------------------------------------------


def _custom(function: str, out_shape, bprop=None):
    """The kernel ``function`` as an operator; its output takes the first input's dtype (float32)."""
    from mindspore import ops

    return ops.Custom(f"{library_path()}:{function}", out_shape=out_shape, out_dtype=lambda *dtypes: dtypes[0],
                      func_type="aot", bprop=bprop)


def _pooled(size: int) -> int:
    return (size - 1) // 2 + 1  # 3x3 stride 2, "same" or padding 1: the same output size


def pool_3x3_s2(kind: str, padding: str):
    """A 3x3 stride-2 ``kind`` ("max" or "avg") pool, ``padding`` "same" (MindSpore's pad_mode: the
    average counts only the input's values) or "symmetric" (one on every side: the average counts the
    padding), with its gradient; see ``layers.downsample_pool``."""
    name = {"max": "MaxPool", "avg": "AvgPool"}[kind] + {"same": "Same", "symmetric": "Symmetric"}[padding]
    backward = _custom(f"{name}Backward", out_shape=lambda x, dy: x)

    def bprop(x, out, dout):
        return (backward(x, dout),)

    return _custom(f"{name}Forward", out_shape=lambda x: [x[0], x[1], _pooled(x[2]), _pooled(x[3])], bprop=bprop)


def depthwise_conv_3x3(stride: int):
    """A 3x3 depthwise convolution with padding 1: ``op(x, weight)``, weight (C, 1, 3, 3), with its
    gradients."""
    if stride not in (1, 2):
        raise ValueError(f"depthwise_conv_3x3 supports stride 1 or 2, got {stride}")
    backward_input = _custom(f"DepthwiseBackwardInputS{stride}", out_shape=lambda x, w, dy: x)
    backward_weight = _custom(f"DepthwiseBackwardWeightS{stride}", out_shape=lambda x, w, dy: w)

    def bprop(x, weight, out, dout):
        return backward_input(x, weight, dout), backward_weight(x, weight, dout)

    def out_shape(x, w):
        return [x[0], x[1], (x[2] - 1) // stride + 1, (x[3] - 1) // stride + 1]

    return _custom(f"DepthwiseForwardS{stride}", out_shape=out_shape, bprop=bprop)
