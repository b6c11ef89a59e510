"""The one place that configures the device and process: CPU/Ascend, graph/PyNative, jit level, CPU
tuning, seeds and log verbosity.

Importing :mod:`mindcv_shufflenet` calls :func:`apply_env_defaults`, so that a user on a CPU gets fast
convolutions without knowing about oneDNN. Every default here yields to a value the user set first.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import random
import re
import sys
from dataclasses import dataclass
from typing import Callable, Optional

from .constants import DEVICES, JIT_LEVELS, MODES, choose

# oneDNN picks a very slow path for NCHW convolutions on AVX-512 CPUs (a dense 3x3 conv took seconds
# instead of ~25 ms); capping its ISA at AVX2 avoids it and costs nothing on CPUs without AVX-512.
ONEDNN_ISA_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
ONEDNN_ISA_DEFAULT = "AVX2"

# MindSpore's C++ log level: 0 debug, 1 info, 2 warning, 3 error. Warnings are many and rarely useful
# to a user (msrun workers alone print dozens of connection retries), so the default is errors only.
LOG_LEVEL_DEFAULT = "3"


def apply_env_defaults() -> None:
    """Set process-level environment defaults that must be in place before the first kernel runs.

    Respects anything already set: export ``ONEDNN_MAX_CPU_ISA=ALL`` (or ``DNNL_MAX_CPU_ISA``) to
    lift the cap, ``GLOG_v=2`` to see MindSpore's warnings.
    """
    if _is_x86() and not any(var in os.environ for var in ONEDNN_ISA_VARS):
        os.environ["ONEDNN_MAX_CPU_ISA"] = ONEDNN_ISA_DEFAULT
    os.environ.setdefault("GLOG_v", LOG_LEVEL_DEFAULT)


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@dataclass(frozen=True)
class RuntimeInfo:
    device: str
    mode: str
    device_id: int
    jit_level: Optional[str]
    num_threads: Optional[int]
    seed: Optional[int]


def init_runtime(
    device: str = "CPU",
    mode: str = "graph",
    device_id: Optional[int] = None,
    jit_level: Optional[str] = None,
    num_threads: Optional[int] = None,
    seed: Optional[int] = None,
    deterministic: bool = False,
) -> RuntimeInfo:
    """Select the device and execution mode for this process.

    Args:
        device: "CPU", "Ascend" or "GPU" (case-insensitive).
        mode: "graph" (compiled; what training uses) or "pynative" (eager; for debugging).
        device_id: card index on Ascend/GPU; defaults to ``$DEVICE_ID`` or 0. Ignored on CPU.
        jit_level: graph compilation level O0/O1/O2 of the Cells the run compiles (:func:`apply_jit_level`;
            MindSpore 2.10 sets it per Cell or ``jit`` function, its global ``jit_config`` being deprecated);
            None keeps MindSpore's default. O2 (the GE backend) only has an effect on Ascend.
        num_threads: CPU kernel threads; None keeps MindSpore's default.
        seed: seeds Python's, NumPy's and MindSpore's generators (and the data pipeline).
        deterministic: ``ms.set_deterministic(True)``: deterministic kernels and communication order on
            Ascend (slower); CPU kernels are deterministic already.
    """
    import mindspore as ms

    device = choose("device", device, DEVICES)
    mode = choose("mode", mode, MODES)
    if jit_level is not None:
        jit_level = choose("jit_level", jit_level, JIT_LEVELS)
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    if device_id is None:
        device_id = int(os.environ.get("DEVICE_ID", "0"))

    if device == "CPU":
        ms.set_device("CPU")
    else:
        check_device_available(device)
        try:
            ms.set_device(device, device_id)
        except RuntimeError as err:  # the plugin loaded, but the card could not be opened
            raise ValueError(f"cannot use {device} device {device_id}: {_first_line(err)}; check DEVICE_ID and "
                             f"that the card is free (npu-smi info), or run with --device_target CPU") from None
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    global _JIT_LEVEL
    _JIT_LEVEL = jit_level
    if num_threads is not None:
        _set_cpu_threads(num_threads)
    if seed is not None:
        set_seed(seed)
    if deterministic:
        ms.set_deterministic(True)
    return RuntimeInfo(device, mode, device_id, jit_level, num_threads, seed)


# The jit level init_runtime was given (None: MindSpore's default), applied Cell by Cell.
_JIT_LEVEL: Optional[str] = None
# The CPU kernel threads set in this process: MindSpore 2.10 takes the setting once per process.
_CPU_THREADS: Optional[int] = None


def jit_level() -> Optional[str]:
    """The jit level of this process's compiled Cells (None: MindSpore's default)."""
    return _JIT_LEVEL


def apply_jit_level(cell, level: Optional[str] = None):
    """Compile ``cell`` at ``level`` (default: the process's, see :func:`init_runtime`); returns the cell.

    MindSpore 2.10 deprecates the global ``set_context(jit_config=...)``; a Cell's own jit config is its
    documented replacement (``ms.jit`` for functions). A Cell takes one setting: a second one is ignored.
    """
    import mindspore as ms

    level = level if level is not None else _JIT_LEVEL
    if level is not None and not cell.jit_config_dict:
        cell.set_jit_config(ms.JitConfig(jit_level=level))
    return cell


def _set_cpu_threads(num_threads: int) -> None:
    """CPU kernel threads through ``mindspore.device_context.cpu.op_tuning.threads_num`` (2.10's replacement of
    ``set_context(runtime_num_threads=...)``), which refuses a second setting in one process."""
    global _CPU_THREADS
    if _CPU_THREADS == num_threads:
        return
    if _CPU_THREADS is not None:
        raise ValueError(f"num_threads is {_CPU_THREADS} already in this process and MindSpore sets it once: "
                         f"start a new process for num_threads {num_threads}")
    import mindspore as ms

    ms.device_context.cpu.op_tuning.threads_num(num_threads)
    _CPU_THREADS = num_threads


def cpu_threads() -> Optional[int]:
    """The CPU kernel threads set in this process, or None when MindSpore's default is in force."""
    return _CPU_THREADS


def resolve_device(device: str) -> str:
    """``"auto"`` becomes Ascend when MindSpore can use one here, else CPU; other names are checked."""
    if str(device).lower() == "auto":
        import mindspore as ms

        try:
            return "Ascend" if ms.hal.is_available("Ascend") else "CPU"
        except Exception:  # a MindSpore build without the Ascend plugin
            return "CPU"
    return choose("device", device, DEVICES)


def check_device_available(device: str) -> None:
    """Raise a one-line ValueError when this MindSpore cannot run on ``device`` (instead of MindSpore's traceback).

    MindSpore loads its device plugins at import; a plugin that failed (no Ascend toolkit, no driver) leaves
    the device unsupported in this process, and ``set_device`` would then fail with a C++ call stack.
    """
    reason = device_unavailable_reason(device)
    if reason is None:
        return
    toolkit = ("install and configure the Ascend toolkit (CANN: driver, firmware, and `source "
               ".../ascend-toolkit/set_env.sh`)" if device == "Ascend" else f"install MindSpore's {device} build")
    raise ValueError(f"device_target {device} is not available on this machine ({reason}): run with "
                     f"--device_target CPU, or {toolkit}")


def device_unavailable_reason(device: str) -> Optional[str]:
    """Why this MindSpore cannot run on ``device`` here (e.g. "cannot load X: why"), or None when it can."""
    if device == "CPU":
        return None
    from mindspore._c_expression import MSContext

    context = MSContext.get_instance()
    if context.is_pkg_support_device(device):
        return None
    return _plugin_error(context.load_plugin_error(), device) or f"this MindSpore package has no {device} plugin"


def _plugin_error(text: str, device: str) -> str:
    """The first plugin-loading failure that concerns ``device``, shortened to "cannot load X: why"."""
    for line in str(text).splitlines():
        if device.lower() not in line.lower():
            continue
        match = re.match(r"\s*Load dynamic library: (\S+) failed\.\s*(.*)", line)
        return f"cannot load {match.group(1)}: {match.group(2).strip()}" if match else line.strip()
    return ""


def _first_line(err: object) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else ""


# Variables msrun (or an Ascend rank table launch, or MindSpore's dry run of a distributed job) sets for each process.
LAUNCHER_VARS = ("MS_WORKER_NUM", "MS_SCHED_HOST", "RANK_TABLE_FILE", "MS_SIMULATION_LEVEL")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    group_size: int

    @property
    def distributed(self) -> bool:
        return self.group_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the msrun job as one data-parallel rank (communication init).

    Raises a ValueError at once (instead of waiting forever for peers) when not launched by msrun.
    """
    from mindspore.communication import get_group_size, get_rank, init

    if not any(var in os.environ for var in LAUNCHER_VARS):
        raise ValueError("distribute: true needs one process per device, started by msrun: "
                         "msrun --worker_num N --local_worker_num N python train.py ... "
                         "(or set distribute: false)")
    try:
        init()
    except RuntimeError as err:  # msrun's scheduler (or a worker) lost a peer: usually another rank failed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"the msrun job lost a process ({first}); the rank that failed first wrote its error "
                       f"to its worker_<rank>.log in msrun's --log_dir") from None
    # No parallel context: the train step all-reduces its gradients itself (nn.DistributedGradReducer with the
    # mean over group_size), so it needs neither set_auto_parallel_context (deprecated in 2.10) nor AutoParallel
    # (semi-automatic and automatic parallel only).
    return DistInfo(get_rank(), get_group_size())


def set_mode(mode: str) -> None:
    """Switch between "graph" and "pynative" execution without touching the device."""
    import mindspore as ms

    mode = choose("mode", mode, MODES)
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)


def current_mode() -> str:
    import mindspore as ms

    return "graph" if ms.get_context("mode") == ms.GRAPH_MODE else "pynative"


def current_device() -> str:
    """The device MindSpore runs on: "CPU", "Ascend" or "GPU"."""
    import mindspore as ms

    return ms.get_context("device_target")


def set_seed(seed: int) -> None:
    """Seed every generator a run draws from: Python, NumPy and MindSpore (which seeds its datasets)."""
    import mindspore as ms
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)


class RunError(RuntimeError):
    """A run that started but cannot go on; the message says why (exit status 1, no traceback)."""


class _CliFormatter(logging.Formatter):
    """A message as it is, or ``warning: ...`` / ``error: ...`` (with whose process it is, under msrun)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}{_process_role()}: {message}"
        return message


def configure_logging(debug: bool = False) -> None:
    """Show the package's log messages on stderr, as a command line should: information as it is, warnings
    and errors prefixed; with ``debug`` also debug messages. Library code only logs; this is for the CLIs."""
    package = logging.getLogger(__package__)
    if not any(getattr(handler, "cli_handler", False) for handler in package.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_CliFormatter())
        handler.cli_handler = True
        package.addHandler(handler)
    package.setLevel(logging.DEBUG if debug else logging.INFO)


def run_cli(main: Callable[[], int], debug: bool = False) -> None:
    """Run a command-line entry point and exit with its status, without MindSpore's exit noise.

    MindSpore 2.10 prints an ``Exception ignored in: Cell.__del__`` traceback for every Cell still alive
    when the interpreter tears its modules down. Collecting them while the modules are still intact
    avoids that. Errors meant for the user are printed as one ``error: ...`` line: bad input
    (ValueError, FileNotFoundError) exits 2, a run that had to stop (RunError) exits 1. ``debug=True``
    (the ``--debug`` flag) shows the traceback instead, and debug log messages. The package's log messages
    reach stderr (:func:`configure_logging`).
    """
    configure_logging(debug)
    try:
        status = main()
    except (ValueError, FileNotFoundError, RunError) as err:
        if debug:
            raise
        print(f"error{_process_role()}: {err}", file=sys.stderr)
        status = 1 if isinstance(err, RunError) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status or 0)


def _process_role() -> str:
    """" (rank N)" in an msrun worker, " (msrun scheduler)" in its scheduler, "" otherwise: msrun shows the
    output of every process in one stream, so each error line says whose it is."""
    role = os.environ.get("MS_ROLE")
    if role == "MS_WORKER":
        return f" (rank {os.environ.get('RANK_ID', os.environ.get('MS_NODE_ID', '?'))})"
    if role == "MS_SCHED":
        return " (msrun scheduler)"
    return ""

