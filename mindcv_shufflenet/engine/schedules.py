"""Per-step learning-rate schedules with MindCV's names and formulas, plus the official linear decay.

A schedule is a float32 array with one learning rate per training step (``epochs * steps_per_epoch``
values); pass it to :func:`mindcv_shufflenet.engine.optim.create_optimizer`, which indexes it by the
optimizer's ``global_step``. The formulas follow MindCV's ``create_scheduler``
(``mindcv/scheduler/scheduler_factory.py``) and ``mindcv/scheduler/dynamic_lr.py``:

* Every schedule starts with ``warmup_epochs`` of linear warmup from ``lr * warmup_factor`` towards
  ``lr``; step ``i`` of the warmup gets ``lr * (f + (1 - f) * t / warmup_epochs)`` with ``t = i /
  steps_per_epoch`` (``t = floor(i / steps_per_epoch)`` with ``lr_epoch_stair``). The last warmup step
  is one step short of ``lr``; the main phase starts at ``lr``.
* The main phase covers the remaining ``epochs - warmup_epochs`` epochs, and its epoch/step counter
  starts again at 0 (so milestones and ``decay_epochs`` count from the end of the warmup):

  - ``cosine_decay`` (alias ``warmup_cosine_decay``): ``min_lr + (lr_c - min_lr) / 2 * (1 + cos(pi *
    t / decay_epochs))`` for ``t`` in ``[0, decay_epochs)``, repeated ``num_cycles`` times with
    ``lr_c = lr * cycle_decay ** c``; cut off at the end of training, and held at ``min_lr`` if the
    cycles end earlier.
  - ``step_decay``: ``lr * decay_rate ** floor(epoch / decay_epochs)`` (always per epoch).
  - ``multi_step_decay``: ``lr * decay_rate ** (number of milestones <= epoch)`` (always per epoch).
  - ``exponential_decay``: ``lr * decay_rate ** t`` (``decay_epochs`` is not used, as in MindCV).
  - ``polynomial_decay``: ``lr * (1 - t / main_epochs) ** decay_rate`` (``decay_rate`` is the power;
    it ends near 0 and ignores ``min_lr``, as in MindCV).
  - ``constant``: ``lr``.
  - ``linear_decay`` (not in MindCV; the ShuffleNet papers' and official code's schedule):
    ``min_lr + (lr - min_lr) * (1 - (j + 1) / main_steps)`` at main-phase step ``j``. The official
    code's ``LambdaLR(lambda step: 1 - step / total_iters)`` is stepped before each iteration, so its
    iteration ``j`` (from 0) trains with ``1 - (j + 1) / total_iters`` and the last one with 0;
    ``min_lr=0`` reproduces it exactly.

``lr_epoch_stair=True`` holds each epoch at the value of its first step (MindCV's ``*_lr`` instead of
``*_refined_lr`` functions).
"""

from __future__ import annotations

import math
import warnings
from bisect import bisect_right
from numbers import Real
from typing import Optional, Sequence

import numpy as np

from ..constants import DEFAULT_MILESTONES, SCHEDULERS, choose


def build_lr_schedule(
    scheduler: str,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    *,
    min_lr: float = 1e-6,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.0,
    decay_epochs: Optional[int] = None,
    decay_rate: float = 0.9,
    multi_step_decay_milestones: Sequence[int] = DEFAULT_MILESTONES,
    lr_epoch_stair: bool = False,
    num_cycles: int = 1,
    cycle_decay: float = 1.0,
) -> np.ndarray:
    """The learning rate of every training step, as MindCV's ``create_scheduler`` computes it.

    Args:
        scheduler: one of :data:`SCHEDULERS` (MindCV's ``scheduler`` key, plus ``linear_decay``).
        lr: peak learning rate (after warmup).
        epochs: training epochs (MindCV's ``epoch_size``).
        steps_per_epoch: optimizer steps per epoch.
        min_lr: floor of ``cosine_decay`` and end of ``linear_decay``.
        warmup_epochs: epochs of linear warmup, counted inside ``epochs``.
        warmup_factor: the first warmup step's learning rate is ``lr * warmup_factor``.
        decay_epochs: cosine: epochs of one cosine cycle (default: all epochs after the warmup, which is
            what MindCV's ShuffleNet recipes set); step_decay: epochs between decays (required).
        decay_rate: factor per decay for step/multi-step/exponential decay; the power of
            ``polynomial_decay``.
        multi_step_decay_milestones: epochs after the warmup at which ``multi_step_decay`` multiplies
            the learning rate by ``decay_rate``; MindCV's default (30, 60, 90).
        lr_epoch_stair: one learning rate per epoch instead of one per step.
        num_cycles, cycle_decay: cosine restarts and the peak's decay per cycle (MindCV's keys).

    Returns:
        float32 array of length ``epochs * steps_per_epoch``.

    Raises:
        ValueError: unknown scheduler name (with the closest valid one) or a bad value (naming the key).
    """
    name = choose("scheduler", scheduler, SCHEDULERS)
    lr = _positive_float("lr", lr)
    epochs = _integer("epochs", epochs, minimum=1)
    steps_per_epoch = _integer("steps_per_epoch", steps_per_epoch, minimum=1)
    warmup_epochs = _integer("warmup_epochs", warmup_epochs, minimum=0)
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) must not exceed epochs ({epochs})")
    warmup_factor = _float_in("warmup_factor", warmup_factor, 0.0, 1.0)
    min_lr = _float_in("min_lr", min_lr, 0.0, math.inf)
    if min_lr > lr:
        raise ValueError(f"min_lr ({min_lr}) must not exceed lr ({lr})")
    if not isinstance(lr_epoch_stair, (bool, np.bool_)):
        raise ValueError(f"lr_epoch_stair must be true or false, got {lr_epoch_stair!r}")

    main_epochs = epochs - warmup_epochs
    warmup = _linear_warmup(lr, warmup_factor, warmup_epochs, steps_per_epoch, bool(lr_epoch_stair))
    main = _main_phase(name, lr, min_lr, main_epochs, steps_per_epoch, bool(lr_epoch_stair), decay_epochs=decay_epochs,
                       decay_rate=decay_rate, milestones=multi_step_decay_milestones, num_cycles=num_cycles,
                       cycle_decay=cycle_decay)
    return np.concatenate([warmup, main]).astype(np.float32)


def _main_phase(name: str, lr: float, min_lr: float, main_epochs: int, steps_per_epoch: int, stair: bool, *,
                decay_epochs: Optional[int], decay_rate: float, milestones: Sequence[int], num_cycles: int,
                cycle_decay: float) -> np.ndarray:
    """The learning rates after the warmup, counted from the warmup's end (formulas: the module docstring)."""
    # Position of each main-phase step in epochs since the warmup ended: per step, or per epoch.
    step = np.arange(main_epochs * steps_per_epoch, dtype=np.float64)
    epoch_index = np.floor(step / steps_per_epoch)
    t = epoch_index if stair else step / steps_per_epoch

    if name in ("cosine_decay", "warmup_cosine_decay"):
        decay_epochs = main_epochs if decay_epochs is None else decay_epochs
        decay_epochs = _integer("decay_epochs", decay_epochs, minimum=1)
        num_cycles = _integer("num_cycles", num_cycles, minimum=1)
        cycle_decay = _positive_float("cycle_decay", cycle_decay)
        if num_cycles * decay_epochs > main_epochs:
            warnings.warn(  # stacklevel: the caller of build_lr_schedule
                f"cosine_decay: {num_cycles} cycle(s) of decay_epochs={decay_epochs} do not fit in the "
                f"{main_epochs} epochs after warmup; the schedule is cut off before reaching min_lr "
                "(MindCV does the same)", stacklevel=3)
        return _cosine_cycles(lr, min_lr, decay_epochs, num_cycles, cycle_decay, steps_per_epoch, main_epochs, stair)
    if name == "step_decay":
        if decay_epochs is None:
            raise ValueError("decay_epochs is required for step_decay (epochs between two decays)")
        decay_epochs = _integer("decay_epochs", decay_epochs, minimum=1)
        gamma = _float_in("decay_rate", decay_rate, 0.0, 1.0, low_open=True)
        return lr * gamma ** np.floor(epoch_index / decay_epochs)
    if name == "multi_step_decay":
        gamma = _float_in("decay_rate", decay_rate, 0.0, 1.0, low_open=True)
        milestones = _milestones(milestones)
        count = np.array([bisect_right(milestones, e) for e in epoch_index], dtype=np.float64)
        return lr * gamma ** count
    if name == "exponential_decay":
        return lr * _float_in("decay_rate", decay_rate, 0.0, 1.0, low_open=True) ** t
    if name == "polynomial_decay":
        power = _positive_float("decay_rate", decay_rate)
        return lr * (1.0 - np.minimum(t, main_epochs) / max(main_epochs, 1)) ** power
    if name == "linear_decay":
        main_steps = main_epochs * steps_per_epoch
        first_step = epoch_index * steps_per_epoch if stair else step
        return min_lr + (lr - min_lr) * (1.0 - (first_step + 1.0) / max(main_steps, 1))
    return np.full(step.shape, lr)  # constant


def _linear_warmup(lr: float, factor: float, warmup_epochs: int, steps_per_epoch: int,
                   stair: bool) -> np.ndarray:
    """MindCV's ``linear_refined_lr`` (``linear_lr`` when ``stair``) from ``lr * factor`` to ``lr``."""
    if warmup_epochs == 0:
        return np.zeros(0)
    step = np.arange(warmup_epochs * steps_per_epoch, dtype=np.float64)
    t = np.floor(step / steps_per_epoch) if stair else step / steps_per_epoch
    start, end = lr * factor, lr
    return start + np.minimum(t, warmup_epochs) / warmup_epochs * (end - start)


def _cosine_cycles(lr: float, min_lr: float, decay_epochs: int, num_cycles: int, cycle_decay: float,
                   steps_per_epoch: int, main_epochs: int, stair: bool) -> np.ndarray:
    """MindCV's ``cosine_decay_refined_lr`` (``cosine_decay_lr`` when ``stair``)."""
    total = main_epochs * steps_per_epoch
    step = np.arange(decay_epochs * steps_per_epoch, dtype=np.float64)
    t = np.floor(step / steps_per_epoch) if stair else step / steps_per_epoch
    t = np.minimum(t, decay_epochs)
    cycles = []
    for c in range(num_cycles):
        delta = 0.5 * (lr * cycle_decay ** c - min_lr)
        cycles.append(min_lr + delta * (1.0 + np.cos(np.pi * t / decay_epochs)))
    main = np.concatenate(cycles)[:total]
    return np.concatenate([main, np.full(total - main.size, min_lr)])


def _integer(key: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not float(value).is_integer():
        raise ValueError(f"{key} must be a whole number, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, got {value}")
    return value


def _positive_float(key: str, value) -> float:
    return _float_in(key, value, 0.0, math.inf, low_open=True)


def _float_in(key: str, value, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    value = float(value)
    if value < low or (low_open and value == low) or value > high:
        low_bracket = "(" if low_open else "["
        bound = "inf)" if math.isinf(high) else f"{high}]"
        raise ValueError(f"{key} must be in {low_bracket}{low}, {bound}, got {value}")
    return value


def _milestones(milestones: Sequence[int]) -> list:
    if isinstance(milestones, np.ndarray):
        milestones = milestones.tolist()
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence) or not milestones:
        raise ValueError(f"multi_step_decay_milestones must be a non-empty list of epochs, got {milestones!r}")
    values = [_integer("multi_step_decay_milestones", m, minimum=1) for m in milestones]
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"multi_step_decay_milestones must be strictly increasing, got {list(milestones)}")
    return values
