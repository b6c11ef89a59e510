"""How batches reach the train step: fed from a host iterator step by step (CPU, or Ascend without
sinking), or sunk to the device queue (Ascend with ``dataset_sink_mode``).

Sinking is set up once per run: one dataset whose sampler covers every remaining epoch (each epoch's order
still a function of (seed, epoch, rank)), one device queue, one compiled graph. ``ms.data_sink`` is called
with ``sink_size=1``: with jit levels O0 / O1 (MindSpore 2.10's levels; O2 is deprecated) it loops over
``sink_size`` in Python anyway, and a step count per call that is not fixed for the run would need a second
queue (one dataset can feed only one). So the host launches each step without waiting for it and reads the
step statistics once per chunk (:func:`chunk_plan`); the steps of a chunk are asynchronous on the device.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, List, Optional

import mindspore as ms
from mindspore import nn

from .. import npu


def chunk_plan(steps_per_epoch: int, log_interval: int, first_step_alone: bool = False) -> List[int]:
    """The step counts between two reads of the step statistics in one epoch: ``log_interval`` steps each,
    then the rest, so that a log line falls every ``log_interval`` steps and at the epoch's end whatever the
    step count (a prime one included). ``log_interval`` 0 means one chunk per epoch. ``first_step_alone``
    runs the epoch's first step as a chunk of its own (the run's first step compiles the graph)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    size = min(log_interval, steps_per_epoch) if log_interval and log_interval > 0 else steps_per_epoch
    plan: List[int] = []
    done = 0
    if first_step_alone:
        plan.append(1)
        done = 1
    while done < steps_per_epoch:
        # Chunks end on multiples of `size`, so the first one after a lone first step is one shorter.
        end = min(steps_per_epoch, (done // size + 1) * size)
        plan.append(end - done)
        done = end
    return plan


class FedSteps:
    """Host-fed steps: each call of :meth:`run` takes ``n`` batches from the epoch's iterator.

    ``before_step(k)`` is called before the k-th step of the epoch (1-based): the place for testing aids.
    """

    def __init__(self, step_cell: nn.Cell, batches: Iterator, before_step: Callable[[int], None]) -> None:
        self.step_cell = step_cell
        self.batches = batches
        self.before_step = before_step
        self.done = 0

    def run(self, n: int) -> float:
        """Run ``n`` steps; return the seconds spent waiting for the input pipeline."""
        wait = 0.0
        for _ in range(n):
            self.done += 1
            self.before_step(self.done)
            start = time.perf_counter()
            image, label = next(self.batches)
            wait += time.perf_counter() - start
            self.step_cell(image, label)
        return wait


class SunkSteps:
    """Ascend only: steps fed from the device queue of one dataset that covers the run's remaining epochs
    (on the CPU, with :mod:`~mindcv_shufflenet.npu`'s stand-ins, from a host iterator over the same dataset)."""

    def __init__(self, step_cell: nn.Cell, dataset, jit_level: Optional[str]) -> None:
        self.run_one = npu.data_sink(step_cell, dataset, sink_size=1,
                                     jit_config=ms.JitConfig(jit_level=jit_level or ""))

    def run(self, n: int) -> float:
        for _ in range(n):
            self.run_one()
        return 0.0  # the queue is filled ahead on the device; the host never waits for a batch
