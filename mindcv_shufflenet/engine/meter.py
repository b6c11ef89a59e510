"""What a training run prints: the console (rank 0, mirrored to train.log), the per-window step meter
(loss, ms/step, img/s, data-wait share) and the epoch's totals."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from .train_step import StepStats


class Console:
    """Rank 0 prints and appends to ``train.log``; other ranks stay quiet."""

    def __init__(self, enabled: bool, log_path: Optional[Path]) -> None:
        self.enabled = enabled
        self.log_path = log_path

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        print(line, flush=True)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(line + "\n")


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


@dataclass
class EpochStats:
    """One epoch of one rank: summed from the step statistics of each chunk."""
    loss_sum: float = 0.0
    loss_count: int = 0
    skipped: int = 0  # steps with non-finite loss or gradients
    seconds: float = 0.0

    def add(self, stats: StepStats) -> None:
        self.loss_sum += stats.loss_sum
        self.loss_count += stats.loss_count
        self.skipped += stats.bad_steps

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.loss_count if self.loss_count else math.nan


class StepMeter:
    """Timings of the steps since the last log line: ms/step, img/s (all devices), data-wait share, mean loss.

    The first chunk of a run (graph compilation) is reported on its own and kept out of the speed figures.
    """

    def __init__(self, world_batch: int) -> None:
        self.world_batch = world_batch
        self.compiled = False
        self.first_seconds: Optional[float] = None  # the run's first chunk: graph compile and first step
        self._reset()

    def _reset(self) -> None:
        self.start = time.perf_counter()
        self.steps, self.wait, self.loss_sum, self.loss_count = 0, 0.0, 0.0, 0

    def add(self, steps: int, stats: StepStats, wait: float) -> Optional[float]:
        """Count a chunk of ``steps`` just run; returns its seconds if it was the run's first (compile) chunk."""
        self.loss_sum += stats.loss_sum
        self.loss_count += stats.loss_count
        if not self.compiled:
            self.compiled = True
            self.first_seconds = time.perf_counter() - self.start
            self.start = time.perf_counter()  # its loss counts, its time does not
            return self.first_seconds
        self.steps += steps
        self.wait += wait
        return None

    def timed(self) -> Tuple[int, float]:
        """The steps timed since the last log line (the compile chunk left out) and their seconds so far."""
        return self.steps, time.perf_counter() - self.start

    def line(self, prefix: str, lr: float, remaining_steps: int, scale_note: str = "") -> Optional[str]:
        """The log line for the window, then a new window; None when no timed step ran in it."""
        if not self.steps:
            return None
        elapsed = time.perf_counter() - self.start
        ms_per_step = 1000 * elapsed / self.steps
        mean_loss = self.loss_sum / self.loss_count if self.loss_count else math.nan
        text = (f"{prefix} | loss {mean_loss:.4f} | lr {lr:.6f} | {ms_per_step:.1f} ms/step | "
                f"{self.world_batch * 1000 / ms_per_step:.1f} img/s | data wait {100 * self.wait / elapsed:.1f}%"
                f"{scale_note} | eta {format_eta(remaining_steps * elapsed / self.steps)}")
        self._reset()
        return text
