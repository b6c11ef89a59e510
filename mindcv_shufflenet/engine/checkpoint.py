"""Checkpoints that survive a kill at any moment, and resuming from them.

Every file is written under a temporary name in the same folder and renamed into place, so a reader
(or a resumed run) only ever sees complete files. Files in ``ckpt_save_dir``:

- ``<model>-<epoch>_<steps>.ckpt``: the whole training state at the end of an epoch (network, optimizer
  slots with ``global_step``, EMA, loss scale) plus ``epoch``, ``best_top1`` and ``best_epoch``; the newest
  ``keep_checkpoint_max`` are kept (or the best, with ``ckpt_save_policy: top_k``).
- ``<model>-last.ckpt``: the newest of those (a hard link to it where the file system allows);
  ``resume: auto`` starts from it, or, when it is damaged, from the newest intact epoch file.
- ``<model>-best.ckpt``: the network weights with the best validation top-1 so far (the EMA weights when
  EMA is on, since those are the ones validated), with their accuracy.
- ``checkpoints.json``: the kept epoch files and their accuracies.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from .. import runtime
from ..checkpoints.integrity import checkpoint_problem
from ..models.weights import read_checkpoint
from . import faults
from .train_step import SCRATCH_PREFIXES

# Temporary names end in .ckpt too: ms.save_checkpoint appends ".ckpt" to any other name.
TMP_SUFFIX = ".partial.ckpt"
# Recomputed from the configuration on resume, so a run may be resumed with another epoch_size.
NOT_RESTORED = ("learning_rate",)
# Step state added after the first release: an older checkpoint without it resumes with the initial values.
ADDED_LATER = ("skipped_updates", "window_finite")


class NonFiniteWeightsError(runtime.RunError):
    """Refusing to save weights that hold NaN or Inf."""


class CheckpointWriteError(runtime.RunError):
    """A checkpoint could not be written (disk full, I/O error); the files saved before are intact."""


class NoIntactCheckpointError(ValueError):
    """``resume: auto`` found checkpoints, but every one of them is damaged."""


def _is_saved(name: str) -> bool:
    return not name.startswith(SCRATCH_PREFIXES)


def atomic_save(params: Sequence[ms.Parameter] | Sequence[dict] | nn.Cell, path: str | os.PathLike,
                metadata: Optional[Dict[str, object]] = None) -> None:
    """``ms.save_checkpoint`` to a temporary file, flushed to disk, then renamed to ``path``.

    ``params``: a Cell, Parameters, or ``{"name": ..., "data": Tensor}`` entries. The file carries a CRC, so a
    byte changed on disk later is an error when it is read (``read_checkpoint``), not silently wrong weights.
    A failed write (disk full, I/O error) raises :class:`CheckpointWriteError` naming the file; ``path`` is then
    as it was before (the old file, or none).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        if isinstance(params, nn.Cell):
            ms.save_checkpoint(params, str(tmp), append_dict=dict(metadata or {}), choice_func=_is_saved,
                               crc_check=True)
        else:
            entries = [p if isinstance(p, dict) else {"name": p.name, "data": p} for p in params]
            ms.save_checkpoint(entries, str(tmp), append_dict=dict(metadata or {}), crc_check=True)
        faults.pause_before_rename()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # MindSpore reports a failed write as RuntimeError
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {reason}. Free space in {path.parent} (or "
                                   f"choose another --ckpt_save_dir) and resume with --resume auto; the "
                                   f"checkpoints saved before are intact") from err
    finally:
        # MindSpore writes to <name>.tmp first (left behind when its write fails): free that space too.
        for leftover in (tmp, tmp.with_suffix(".tmp")):
            leftover.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partial_files(folder: str | os.PathLike) -> List[str]:
    """Delete temporary files a killed run left behind; return their names."""
    removed = []
    for tmp in Path(folder).glob(".*.partial*"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp.name)
    return removed


def check_finite(params: Sequence[ms.Parameter] | Sequence[dict], what: str = "the weights") -> None:
    """Raise :class:`NonFiniteWeightsError` if any of ``params`` holds NaN or Inf."""
    entries = [p if isinstance(p, dict) else {"name": p.name, "data": p} for p in params]
    bad = [e["name"] for e in entries if not np.isfinite(e["data"].asnumpy()).all()]
    if bad:
        raise NonFiniteWeightsError(f"not saving {what}: {len(bad)} parameters hold NaN/Inf (first: {bad[0]}); "
                                    f"training diverged: lower lr, enable clip_grad, or use loss_scale_type: "
                                    f"dynamic, and resume from the last checkpoint (--resume auto)")


def epoch_checkpoints(folder: str | os.PathLike, model_name: str) -> List[Path]:
    """The ``<model>-<epoch>_<steps>.ckpt`` files in ``folder``, newest epoch first."""
    pattern = re.compile(re.escape(model_name) + r"-(\d+)_(\d+)\.ckpt")
    found = [(int(m.group(1)), path) for path in Path(folder).glob(f"{model_name}-*_*.ckpt")
             if (m := pattern.fullmatch(path.name))]
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


def find_resume_checkpoint(folder: str | os.PathLike, model_name: str,
                           log: Callable[[str], None] = print) -> Optional[str]:
    """The checkpoint ``resume: auto`` continues from: ``<model>-last.ckpt`` if it is intact, else the newest
    intact ``<model>-<epoch>_<steps>.ckpt`` (with a warning naming both files), else None when the folder
    holds no checkpoint of ``model_name`` at all (a new run).

    ``last.ckpt`` is usually a hard link to the newest epoch file, so damage to one is damage to both: the
    search goes back as far as it must. Intact means whole and, for files saved with a CRC (as training
    saves them), unchanged since written.

    Raises:
        NoIntactCheckpointError: checkpoints are there but none is intact; the message lists each with its
            problem.
    """
    folder = Path(folder)
    last = folder / f"{model_name}-last.ckpt"
    epochs = epoch_checkpoints(folder, model_name)
    if not last.exists() and not epochs:
        log(f"resume: auto found no checkpoint in {folder}; starting from scratch")
        return None
    damaged = []
    if last.exists():
        problem = checkpoint_problem(last)
        if problem is None:
            return str(last)
        damaged.append((last, problem))
    for path in epochs:
        problem = checkpoint_problem(path)
        if problem is None:
            first = (f"{last} is damaged ({damaged[0][1]})" if last.exists() else f"{last} is missing")
            others = [p.name for p, _ in damaged if p != last]
            also = f"; also damaged: {', '.join(others)}" if others else ""
            log(f"warning: {first}; resuming from {path}, the newest intact checkpoint{also}")
            return str(path)
        damaged.append((path, problem))
    listed = "; ".join(f"{path.name}: {problem}" for path, problem in damaged)
    raise NoIntactCheckpointError(f"resume: no intact checkpoint in {folder} ({listed}): restore one there, or "
                                  f"train from scratch without --resume (in another --ckpt_save_dir)")


@dataclass
class ResumeState:
    path: str
    epoch: int  # epochs completed
    global_step: int  # update steps run (applied or skipped) = the LR schedule's position
    best_top1: float
    best_epoch: int
    counts_skipped: bool = True  # False: an older checkpoint, whose global_step left out skipped updates


def load_training_state(step_cell: nn.Cell, path: str | os.PathLike) -> ResumeState:
    """Load a ``<model>-<epoch>_<steps>.ckpt`` (or ``-last.ckpt``) into the train-step Cell.

    Every parameter of the step (network, optimizer slots, EMA, loss scale) must be in the file with its
    shape; the learning-rate table is rebuilt from the configuration instead. Mismatches are listed.
    """
    state = read_checkpoint(path)
    if "epoch" not in state or "global_step" not in state:
        raise ValueError(f"{path} is not a training checkpoint of this project (no epoch / global_step): "
                         f"to start from its weights use ckpt_path without resume_opt")
    params = {p.name: p for p in step_cell.get_parameters()}
    params = {n: p for n, p in params.items() if _is_saved(n)}
    missing = [n for n in params if n not in state and n not in NOT_RESTORED + ADDED_LATER]
    shaped = [n for n, p in params.items() if n in state and n not in NOT_RESTORED
              and tuple(state[n].shape) != tuple(p.shape)]
    if missing or shaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if shaped:
            parts.append(f"{len(shaped)} with another shape (e.g. {shaped[0]}: "
                         f"{tuple(state[shaped[0]].shape)} vs {tuple(params[shaped[0]].shape)})")
        raise ValueError(f"{path} does not match this training setup: {'; '.join(parts)}. Resume with the "
                         f"configuration that wrote it (see config.yaml beside it), e.g. the same model, "
                         f"num_classes, optimizer, ema and gradient_accumulation_steps")
    for name, p in params.items():
        if name in NOT_RESTORED or name not in state:
            continue
        p.set_data(Tensor(state[name].astype(ms.dtype_to_nptype(p.dtype), copy=False), p.dtype))
    return ResumeState(str(path), int(state["epoch"]), int(np.ravel(state["global_step"])[0]),
                       float(state.get("best_top1", -1.0)), int(state.get("best_epoch", -1)),
                       counts_skipped="skipped_updates" in state)


class CheckpointManager:
    """Writes the epoch, last and best checkpoints of one run (rank 0 only) and prunes old ones."""

    def __init__(self, folder: str | os.PathLike, model_name: str, keep_max: int = 10,
                 policy: Optional[str] = "latest_k") -> None:
        self.folder = Path(folder)
        self.model_name = model_name
        self.keep_max = keep_max
        self.policy = policy or "latest_k"
        self.index_path = self.folder / "checkpoints.json"
        self.kept: List[Dict[str, object]] = []
        if self.index_path.exists():
            try:
                self.kept = json.loads(self.index_path.read_text())
            except (json.JSONDecodeError, OSError):
                self.kept = []

    @property
    def last_path(self) -> Path:
        return self.folder / f"{self.model_name}-last.ckpt"

    @property
    def best_path(self) -> Path:
        return self.folder / f"{self.model_name}-best.ckpt"

    def epoch_path(self, epoch: int, steps_per_epoch: int) -> Path:
        return self.folder / f"{self.model_name}-{epoch}_{steps_per_epoch}.ckpt"

    def save_epoch(self, step_cell: nn.Cell, network: nn.Cell, epoch: int, steps_per_epoch: int,
                   metadata: Dict[str, object], top1: Optional[float] = None) -> Path:
        """The full training state after ``epoch`` epochs, as an epoch file and as ``-last``."""
        check_finite([p for p in step_cell.get_parameters() if _is_saved(p.name)], f"epoch {epoch}")
        path = self.epoch_path(epoch, steps_per_epoch)
        atomic_save(step_cell, path, {**metadata, "epoch": epoch})
        try:
            self._link_or_copy(path, self.last_path)
            self.kept = [k for k in self.kept if k["file"] != path.name]
            self.kept.append({"file": path.name, "epoch": epoch, "top1": top1})
            self._prune()
            atomic_write_text(self.index_path, json.dumps(self.kept, indent=1))
        except OSError as err:
            raise CheckpointWriteError(f"cannot write {self.last_path} ({err.strerror}): free space in {self.folder} "
                                       f"and resume with --resume auto; {path.name} and the checkpoints before it "
                                       f"are intact") from err
        return path

    def save_best(self, params: Sequence[ms.Parameter] | Sequence[dict], metadata: Dict[str, object]) -> Path:
        check_finite(params, "the best weights")
        atomic_save(params, self.best_path, metadata)
        return self.best_path

    def _prune(self) -> None:
        if len(self.kept) <= self.keep_max:
            return
        if self.policy == "top_k":
            ranked = sorted(self.kept, key=lambda k: (k["top1"] if k["top1"] is not None else -math.inf,
                                                      k["epoch"]), reverse=True)
        else:
            ranked = sorted(self.kept, key=lambda k: k["epoch"], reverse=True)
        keep, drop = ranked[: self.keep_max], ranked[self.keep_max:]
        for entry in drop:
            (self.folder / str(entry["file"])).unlink(missing_ok=True)
        self.kept = sorted(keep, key=lambda k: k["epoch"])

    @staticmethod
    def _link_or_copy(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}{TMP_SUFFIX}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            tmp.write_bytes(src.read_bytes())
        os.replace(tmp, dst)
