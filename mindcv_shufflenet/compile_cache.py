"""MindSpore's compile cache, keyed so that a saved graph is only ever reused by a run that would build the
same graph.

What MindSpore 2.10 checks before it reuses a graph (``MS_COMPILER_CACHE_ENABLE=1``; Python side
``mindspore/graph/api.py``, C++ side ``compile_cache_manager.cc``): one SHA-256 over "the dependency files"
and that the file ``compile_cache_<n>.mindir`` exists, ``n`` counting the graphs this process compiled with
the cache on. The dependency files are the entry script (``sys.argv[0]``) and the modules it imports at
its top level, followed through *their* top-level imports, leaving out every file under a ``sys.path``
folder (so an installed package is never checked). For ``train.py`` that is train.py and four of this
package's modules; the models, the train step and the optimizer are not among them. Not checked: the
batch size and image size (the inputs' shapes), the model and its options, the number of classes, amp
and jit levels, the MindSpore version, the device. A graph saved for batch 4 and reused for batch 2 gives
wrong losses and NaN weights without an error; a changed width fails in the optimizer.

So this module gives every distinct graph its own folder, named by a key over what MindSpore does not
check: the configuration (all options but paths, logging and checkpoint bookkeeping), the model options
the network was built with, the names, shapes and dtypes of every parameter of the train step, its
sub-cells' classes and primitives' attributes, the input shapes, device, mode, jit level, number of
ranks, the MindSpore and Python versions, the package's switches in the environment, and a hash of the
package's own source. MindSpore adds ``rank_<id>/graph_cache/`` below that folder, so each msrun rank
reads only what it wrote itself.

Only the train step's graph is cached: the environment switch is on while that one graph compiles (ahead
of the first step, from dummy inputs of the batch's shape and dtype) and off again before anything else
compiles. MindSpore numbers cached graphs in compile order, so a process that compiled other graphs under
the cache (validation shapes, a user's own calls) could later be served one of them in the wrong place.
With dataset sinking the cache is not used: the sunk graph is a jit function around the step, and a resumed
sunk run (on the CPU, with the NPU stand-ins) that loaded it did not end with the weights of a run left alone.

MindSpore fixes the cache folder at its first use in a process and numbers the graphs it caches from the
process's start, so the cache serves a process's first training run (train.py, each msrun rank, each
resume); a second run in the same Python process compiles without it. A truncated cache file (a run killed while it was
written) is detected by MindSpore, which compiles and writes it again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

ENV_ENABLE = "MS_COMPILER_CACHE_ENABLE"
ENV_PATH = "MS_COMPILER_CACHE_PATH"
# Bumped when what the key covers changes, so that folders written under an older rule are never reused.
KEY_FORMAT = 1
# Options that never reach the train step's graph: where files are, what is logged and kept, validation.
NEUTRAL_OPTIONS = frozenset({
    "data_dir", "train_split", "val_split", "ckpt_save_dir", "ckpt_path", "resume", "resume_opt", "pretrained",
    "log_interval", "plot", "keep_checkpoint_max", "ckpt_save_interval", "ckpt_save_policy", "num_parallel_workers",
    "val_while_train", "val_interval", "val_amp_level", "eval_shuffle", "crop_pct", "compile_cache",
    "compile_cache_dir", "dataset_download",
})
# MindSpore's developer switches change how it compiles; the package's own switches are named in
# environment_facts (not its testing aids, which add parameters the fingerprint sees, or its paths).
ENV_PREFIXES = ("MS_DEV_",)
PACKAGE = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".py", ".cc")
CACHE_FILE = "compile_cache_0.mindir"  # the first (and only) graph this module lets MindSpore cache
DEPENDENCY_HASH_FILE = "compile_dependency.hash"
DEFAULT_SUBDIR = "compile_cache"
KEY_LENGTH = 20

_process_folder: Optional[Path] = None  # MindSpore's cache folder for this process, once it has used one


@functools.cache
def source_digest(package: Path = PACKAGE) -> str:
    """SHA-256 over the package's source files (paths and contents): a changed line is a new key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A JSON-able form of a value that may shape a graph: numbers, strings, dtypes, nested lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    return f"{type(value).__name__}:{value}"


def graph_fingerprint(cell) -> str:
    """SHA-256 of what a Cell's graph is built from beyond the configuration: every sub-cell's class and the
    attributes of the primitives it holds (a custom kernel's library, a pool's padding), and every parameter's
    name, shape, dtype and trainability (model width, classes, optimizer slots, the LR table's length)."""
    from mindspore.ops.primitive import Primitive

    digest = hashlib.sha256()
    for name, sub in cell.cells_and_names():
        digest.update(f"cell {name} {type(sub).__module__}.{type(sub).__qualname__}\n".encode())
        for attr, value in sorted(vars(sub).items()):
            if isinstance(value, Primitive):
                attrs = json.dumps(_plain(dict(value.attrs)), sort_keys=True)
                digest.update(f"  {attr} {type(value).__name__} {attrs}\n".encode())
    for name, param in cell.parameters_and_names():
        digest.update(f"param {name} {tuple(param.shape)} {param.dtype} {param.requires_grad}\n".encode())
    return digest.hexdigest()


def environment_facts(device: str, mode: str, jit_level: Optional[str], group_size: int) -> Dict[str, Any]:
    """What the key takes from the process: versions, device, execution settings, switches, source. (Not the
    rank: MindSpore keeps each rank's graphs in a ``rank_<id>`` folder of its own.)"""
    import mindspore as ms

    from .kernels.cpu_ops import ENV_SWITCH as CPU_KERNELS
    from .models.graph_reuse import ENV_GRAPH_REUSE

    switches = {k: v for k, v in sorted(os.environ.items())
                if k.startswith(ENV_PREFIXES) or k in (CPU_KERNELS, ENV_GRAPH_REUSE)}
    return {"format": KEY_FORMAT, "mindspore": ms.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "device": device, "mode": mode, "jit_level": jit_level,
            "group_size": group_size, "environment": switches, "source": source_digest()}


def graph_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """The configuration values that can reach the train step's graph (all but :data:`NEUTRAL_OPTIONS`)."""
    return {k: _plain(v) for k, v in sorted(options.items()) if k not in NEUTRAL_OPTIONS}


def cache_key(fields: Mapping[str, Any]) -> str:
    """A short name for a set of key fields: equal fields give equal names, any difference another."""
    text = json.dumps(_plain(dict(fields)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def step_input_spec(batch_size: int, image_size: int, num_classes: int, soft_labels: bool
                    ) -> Tuple[Tuple[Tuple[int, ...], str], Tuple[Tuple[int, ...], str]]:
    """The (shape, dtype) of the image and label batches the training pipeline yields."""
    image = ((batch_size, 3, image_size, image_size), "float32")
    label = ((batch_size, num_classes), "float32") if soft_labels else ((batch_size,), "int32")
    return image, label


def step_inputs(spec: Sequence[Tuple[Tuple[int, ...], str]]) -> list:
    """Zero Tensors of ``spec``'s shapes and dtypes: compiling from them gives the graph that real batches
    of the same shapes and dtypes then run (MindSpore keys compiled graphs by their inputs' types)."""
    import numpy as np
    from mindspore import Tensor

    return [Tensor(np.zeros(shape, dtype)) for shape, dtype in spec]


@contextlib.contextmanager
def cache_enabled(folder: Path) -> Iterator[bool]:
    """MindSpore's compile cache on, in ``folder``, for what compiles inside the block. Yields False (and
    leaves the cache off) in a process that used the cache before, since MindSpore fixes the folder at its
    first use and numbers the graphs it caches from the process's start, or when ``folder`` cannot be made."""
    global _process_folder
    if _process_folder is not None:
        logger.debug("compile cache not used: this process already cached a graph in %s", _process_folder)
        yield False
        return
    folder = Path(folder).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logger.warning("compile cache not used: cannot create %s (%s)", folder, err.strerror)
        yield False
        return
    previous_path = os.environ.get(ENV_PATH)
    os.environ[ENV_PATH] = str(folder)
    os.environ[ENV_ENABLE] = "1"
    _process_folder = folder
    try:
        yield True
    finally:
        # Unset, not "0": MindSpore's C++ side treats any non-empty value as on. The path also places other
        # MindSpore caches (Ascend kernel_meta), which stay where the user had them.
        os.environ.pop(ENV_ENABLE, None)
        if previous_path is None:
            os.environ.pop(ENV_PATH, None)
        else:
            os.environ[ENV_PATH] = previous_path


def cached_files(folder: Path, rank: int, role: str = "") -> Tuple[Path, Path]:
    """Where MindSpore writes the train step's graph under ``folder``, and the hash of the files it checks
    (written after the graph, once the graph was written whole). In an msrun job MindSpore starts both names
    with the process's cluster role (``MS_ROLE``, e.g. ``MS_WORKER``)."""
    graphs = Path(folder) / f"rank_{rank}" / "graph_cache"
    return graphs / (role + CACHE_FILE), graphs / (role + DEPENDENCY_HASH_FILE)


def _stamp(path: Path) -> Optional[Tuple[int, int]]:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def compile_cached(compile_fn: Callable[[], Any], folder: Path, rank: int, role: str = "") -> Tuple[str, float]:
    """Run ``compile_fn`` with the cache on in ``folder``; return what happened and the seconds it took:
    "loaded" (the saved graph was reused), "saved" (compiled and written), "unsaved" (compiled; MindSpore
    could not write it, a full disk say) or "unused" (compiled without the cache: see :func:`cache_enabled`)."""
    graph, dependency_hash = cached_files(folder, rank, role)
    before = _stamp(graph), _stamp(dependency_hash)
    start = time.perf_counter()
    with cache_enabled(folder) as active:
        compile_fn()
    seconds = time.perf_counter() - start
    after = _stamp(graph), _stamp(dependency_hash)
    if not active:
        return "unused", seconds
    if before[0] is not None and after == before:
        return "loaded", seconds
    # MindSpore (re)writes the graph when it compiled, then the hash only if the graph was written whole.
    return ("saved" if after[1] is not None and after[1] != before[1] else "unsaved"), seconds


def user_cache_note() -> Optional[str]:
    """A warning when the user switched MindSpore's own, unkeyed, cache on for the whole process."""
    if os.environ.get(ENV_ENABLE) and _process_folder is None:
        return (f"{ENV_ENABLE} is set: MindSpore then caches every graph of this process in "
                f"{os.environ.get(ENV_PATH, '.')} and reuses them after checking only the entry script's imports "
                f"(not the batch, model or options); this run leaves it to MindSpore. Unset it for the keyed cache "
                f"(compile_cache: true)")
    return None


def cache_root(cfg) -> Path:
    """The folder of the run's keyed cache folders: ``compile_cache_dir``, else ``<ckpt_save_dir>/compile_cache``."""
    return Path(cfg.compile_cache_dir) if cfg.compile_cache_dir else Path(cfg.ckpt_save_dir) / DEFAULT_SUBDIR


def run_key_fields(run) -> Dict[str, Any]:
    """Everything the train step's graph of a built run depends on that MindSpore does not check."""
    cfg, data = run.cfg, run.data
    return {"process": environment_facts(run.device, cfg.mode, run.jit_level, run.dist.group_size),
            "options": graph_options(cfg.as_dict()), "model": _plain(getattr(run.network, "options", {})),
            "num_classes": data.num_classes, "updates_per_epoch": data.updates_per_epoch,
            "inputs": step_input_spec(cfg.batch_size, cfg.image_resize, data.num_classes, data.first.soft_labels),
            "sink": run.sink, "graph": graph_fingerprint(run.step_cell)}


def run_cache_folder(run) -> Path:
    """The keyed folder of a built run's train step graph."""
    return cache_root(run.cfg) / cache_key(run_key_fields(run))


def remove_other_keys(root: Path, keep: Path) -> None:
    """Delete the key folders in ``root`` other than ``keep``: graphs of a run's earlier code or options,
    which it will not load again. Only for the default folder inside a run's ``ckpt_save_dir``."""
    if not root.is_dir():
        return
    for folder in root.iterdir():
        if folder.is_dir() and folder.name != keep.name and _is_key_name(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def _is_key_name(name: str) -> bool:
    return len(name) == KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def prepare_train_step(run) -> None:
    """The training run's hook: compile the train step through the keyed cache (see the module docstring).

    Does nothing with ``compile_cache: false``, in PyNative mode, when no epoch is left to train, in a process
    that used the cache before, or when the user set MindSpore's own switch (a warning then says why that is
    unsafe)."""
    cfg = run.cfg
    if not cfg.compile_cache or cfg.mode != "graph" or run.state.epoch >= cfg.epoch_size or _process_folder:
        return
    note = user_cache_note()
    if note:
        run.console(f"warning: {note}")
        return
    folder = run_cache_folder(run)
    if run.dist.is_main and not cfg.compile_cache_dir:
        remove_other_keys(folder.parent, keep=folder)
    if run.sink:
        # Not for a sunk step: its graph is a jit function around the step (ms.data_sink's), and with the NPU
        # stand-ins a resumed sunk run that loaded it ended with other weights than a run left alone.
        run.console("note: the compile cache is not used for a sunk train step (dataset_sink_mode)")
        return
    inputs = step_inputs(run_key_fields(run)["inputs"])
    role = os.environ.get("MS_ROLE", "") if run.dist.distributed else ""  # MindSpore's cluster role, once joined
    outcome, seconds = compile_cached(lambda: run.step_cell.compile(*inputs), folder, run.dist.rank, role)
    run.console("train step " + OUTCOMES[outcome].format(seconds=seconds, folder=folder))


OUTCOMES = {"loaded": "loaded from the compile cache in {seconds:.1f} s ({folder})",
            "saved": "compiled in {seconds:.1f} s and saved to the compile cache ({folder})",
            "unsaved": "compiled in {seconds:.1f} s; MindSpore could not write the compile cache in {folder}",
            "unused": "compiled in {seconds:.1f} s; the compile cache folder {folder} could not be made"}
