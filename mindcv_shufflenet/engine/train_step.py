"""The one training step: forward, loss, gradients, all-reduce, loss scaling, clipping, update, EMA.

The same Cell runs on CPU and Ascend, standalone and under msrun. Loss scaling is written out with
plain ops instead of MindSpore's loss-scale managers, because those refuse dynamic scaling on CPU; the
overflow check (``all_finite``) works on every device. A step whose loss or gradients are not finite
changes nothing but the loss-scale state and the step counters: no optimizer update, no EMA update (also
with a fixed scale, where MindCV's ``drop_overflow_update: false`` would apply it and leave NaN weights).

Under data parallel the decision to skip is taken by all ranks together: each rank's not-finite flag is
all-reduced before it is used. On Ascend 910A (and 910B in saturation mode) overflow is read from the
device's float-status register (as ``mindspore.amp.all_finite`` does there), and an fp16 overflow
saturates instead of becoming Inf, so the reduced
gradients do not carry it to the other ranks; without the flag's all-reduce the ranks would disagree.
That register is cleared before the forward pass, so an overflow in validation cannot mark a step. Both
register operations live in :mod:`mindcv_shufflenet.npu`, with the CPU stand-ins that compile this branch here.

The learning-rate schedule follows the update steps *run*, skipped ones included: the optimizer's
``global_step`` (which indexes the schedule) is advanced by hand on a skipped update. The schedule is
defined in epochs (warm-up, decay to the last step), as in PyTorch, where the scheduler steps whether or
not the scaler skipped the update; so a skipped step neither shifts it nor breaks the resume check.
``skipped_updates`` counts the updates not applied.

A forward pass in training mode also moves the BatchNorm statistics; a step whose loss or gradients are
not finite puts them back as they were before it (``bn_backup.*``, a scratch copy that is not saved), so one
NaN batch cannot leave NaN statistics behind for evaluation and checkpoints.

With dataset sinking only the last step of a sunk chunk returns its outputs, so the step also sums its
own statistics into ``step_stats`` (loss sum, finite-loss count, bad steps, current and peak run of bad
steps); the loop reads and resets them once per chunk (:class:`StepStatsReader`).

Everything the step keeps between calls is a Parameter of this Cell, so one ``save_checkpoint(step)``
captures the whole training state (network, optimizer slots, EMA, loss scale, accumulation), under
MindCV's names where MindCV has them (``moments.*``, ``ema.*``, ``scale_sense``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from .. import npu

# Dynamic loss scaling: halve on overflow (never below 1), double after this many clean updates.
SCALE_FACTOR = 2.0
SCALE_WINDOW = 2000
# MindCV's EMA warm-up: the effective decay grows as decay * (1 - exp(-updates / EMA_WARMUP)).
EMA_WARMUP = 2000.0

_grad_scale = ops.MultitypeFuncGraph("grad_scale")
_add_into = ops.MultitypeFuncGraph("add_into")
_zero = ops.MultitypeFuncGraph("zero")
_ema_update = ops.MultitypeFuncGraph("ema_update")
_copy = ops.MultitypeFuncGraph("copy")

# The step's scratch Parameters (BatchNorm backup, per-chunk statistics): never saved or restored.
SCRATCH_PREFIXES = ("bn_backup.", "step_stats")
# Layout of the ``step_stats`` vector.
STAT_LOSS_SUM, STAT_LOSS_COUNT, STAT_BAD, STAT_STREAK, STAT_PEAK = range(5)


@_grad_scale.register("Tensor", "Tensor")
def _scale_one(scale, grad):
    return grad * ops.cast(scale, grad.dtype)


@_add_into.register("Tensor", "Tensor")
def _add_one(accumulator, grad):
    return ops.assign_add(accumulator, grad)


@_zero.register("Tensor")
def _zero_one(accumulator):
    return ops.assign(accumulator, ops.zeros_like(accumulator))


@_copy.register("Tensor", "Tensor")
def _copy_one(target, source):
    return ops.assign(target, source)


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _ema_one(decay, ema, weight):
    return ops.assign(ema, ema * ops.cast(decay, ema.dtype) + weight * ops.cast(1.0 - decay, ema.dtype))


class NetWithLoss(nn.Cell):
    """``loss(network(image), label)``, the loss in float32 whatever the network's precision."""

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss_fn = loss_fn

    def construct(self, image, label):
        logits = self.network(image)
        if isinstance(logits, tuple):  # auxiliary heads in training: the loss weighs them (engine.loss)
            return self.loss_fn(logits, label)
        return self.loss_fn(ops.cast(logits, ms.float32), label)


class TrainStep(nn.Cell):
    """One optimisation step per call: ``loss, finite, scale = step(image, label)``.

    ``finite`` is False when this step's loss or gradients were not finite on any rank (the step was not
    applied); with accumulation it is this micro-step's own flag, and a window with any such micro-step
    is skipped as a whole.

    Args:
        network: the model (already cast by ``auto_mixed_precision`` if amp is on).
        loss_fn: ``loss_fn(logits_float32, label) -> scalar``.
        optimizer: built over ``network.trainable_params()`` with ``loss_scale=1`` (gradients reach it
            unscaled).
        loss_scale: the fixed scale, or the initial dynamic one.
        dynamic_loss_scale: adjust the scale once per update (halve after an update with an overflow,
            double after SCALE_WINDOW clean updates).
        clip_grad_norm: clip gradients to this global norm (None: off).
        ema_decay: keep ``ema.<name>`` copies of every network parameter (None: off).
        accumulation_steps: apply the mean gradient of this many calls once.
        gradient_reducer: ``nn.DistributedGradReducer`` under data parallel, else None.
        inject_overflow: add a scratch flag (``step_stats_inject``) that makes the step report overflow on
            this rank while it is True (a testing aid, see :mod:`.faults`).
        scale_window: with a dynamic scale, the clean updates after which it doubles.
    """

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, *, loss_scale: float = 1.0,
                 dynamic_loss_scale: bool = False,
                 clip_grad_norm: Optional[float] = None, ema_decay: Optional[float] = None,
                 accumulation_steps: int = 1, gradient_reducer: Optional[nn.Cell] = None,
                 inject_overflow: bool = False, scale_window: int = SCALE_WINDOW) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.net_with_loss = NetWithLoss(network, loss_fn)
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.hyper_map = ops.HyperMap()
        self.reducer = gradient_reducer
        self.distributed = gradient_reducer is not None
        if self.distributed:
            self.flag_all_reduce = ops.AllReduce()
        # Ascend 910A (910B in saturation mode): overflow is read from the NPU's float-status register.
        self.float_status = npu.float_status()

        self.scale_sense = Parameter(Tensor(loss_scale, ms.float32), name="scale_sense", requires_grad=False)
        self.loss_scale_counter = Parameter(Tensor(0, ms.int32), name="loss_scale_counter", requires_grad=False)
        self.dynamic = dynamic_loss_scale
        # A fixed scale of 1 leaves the gradients as they are: no unscaling op per parameter in the graph.
        self.scaled = dynamic_loss_scale or float(loss_scale) != 1.0
        self.scale_window = int(scale_window)
        self.skipped_updates = Parameter(Tensor(0, ms.int32), name="skipped_updates", requires_grad=False)
        self.step_stats = Parameter(Tensor(np.zeros(5, np.float32)), name="step_stats", requires_grad=False)
        self.inject = inject_overflow
        if inject_overflow:
            # int32, not bool: graph mode cannot load a bool Parameter.
            self.step_stats_inject = Parameter(Tensor(0, ms.int32), name="step_stats_inject", requires_grad=False)

        self.clip = clip_grad_norm is not None
        self.clip_norm = float(clip_grad_norm or 1.0)

        self.bn_stats = ms.ParameterTuple([p for p in network.get_parameters()
                                           if p.name.endswith(("moving_mean", "moving_variance"))])
        self.keep_bn_stats = len(self.bn_stats) > 0
        if self.keep_bn_stats:
            self.bn_backup = self.bn_stats.clone(prefix="bn_backup", init="same")

        self.use_ema = ema_decay is not None
        if self.use_ema:
            self.ema_decay = float(ema_decay)
            # Every network parameter, BatchNorm statistics included, so the EMA copy is a whole model.
            self.model_params = ms.ParameterTuple(list(network.get_parameters()))
            self.ema_params = self.model_params.clone(prefix="ema", init="same")
            self.ema_updates = Parameter(Tensor(0.0, ms.float32), name="ema_updates", requires_grad=False)

        self.accumulation_steps = int(accumulation_steps)
        self.accumulate = self.accumulation_steps > 1
        if self.accumulate:
            self.grad_accum = self.weights.clone(prefix="grad_accum", init="zeros")
            self.accum_step = Parameter(Tensor(0, ms.int32), name="accum_step", requires_grad=False)
            # 0 once a micro-step of the current window was not finite (int32: no bool Parameters in graph mode).
            self.window_finite = Parameter(Tensor(1, ms.int32), name="window_finite", requires_grad=False)

    def construct(self, image, label):
        scale = self.scale_sense.value()
        if self.float_status is not None:
            image = self.float_status.clear(image)
        if self.keep_bn_stats:
            image = ops.depend(image, self.hyper_map(_copy, self.bn_backup, self.bn_stats))
        loss = self.net_with_loss(image, label)
        sens = ops.fill(loss.dtype, loss.shape, 1.0) * ops.cast(scale, loss.dtype)
        grads = self.grad(self.net_with_loss, self.weights)(image, label, sens)
        if self.distributed:
            grads = self.reducer(grads)
        if self.scaled:
            grads = self.hyper_map(ops.partial(_grad_scale, 1.0 / scale), grads)
        finite = self._finite_on_all_ranks(loss, grads)
        if self.accumulate:
            grads, apply, window_finite = self._accumulate(grads, finite)
        else:
            apply, window_finite = Tensor(True), finite
        if self.dynamic:
            # Once per update, from the whole window: one overflow halves the scale once, and the growth
            # counter counts updates, as with a scaler stepped once per optimizer step.
            if apply:
                loss = ops.depend(loss, self._adjust_scale(window_finite))
        if self.clip:
            grads = ops.clip_by_global_norm(grads, self.clip_norm)
        # A non-finite update would leave NaN weights for good: never apply one, whatever the scale type.
        if ops.logical_and(apply, window_finite):
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self._update_ema())
        else:
            if apply:
                loss = ops.depend(loss, self._skip_update())
        if self.keep_bn_stats:
            if not finite:
                loss = ops.depend(loss, self.hyper_map(_copy, self.bn_stats, self.bn_backup))
        if self.accumulate:
            if apply:
                loss = ops.depend(loss, self._start_window())
        loss = ops.depend(loss, self._record(loss, finite))
        return loss, finite, scale

    def _finite_on_all_ranks(self, loss, grads):
        """This step's loss and gradients are finite on every rank (the not-finite flag is all-reduced)."""
        if self.float_status is not None:
            grads_finite = self.float_status.grads_finite(grads)
        else:
            grads_finite = ms.amp.all_finite(grads)
        finite = ops.logical_and(grads_finite, ops.isfinite(loss).all())
        if self.inject:
            finite = ops.logical_and(finite, ops.equal(self.step_stats_inject.value(), 0))
        if self.distributed:
            not_finite = ops.cast(ops.logical_not(finite), ms.float32)
            finite = ops.less(self.flag_all_reduce(not_finite), 0.5)
        return finite

    def _skip_update(self):
        """Count a skipped update and still advance the schedule's step (see the module docstring)."""
        skipped = ops.assign_add(self.skipped_updates, Tensor(1, ms.int32))
        return ops.depend(ops.assign_add(self.optimizer.global_step, Tensor([1], ms.int32)), skipped)

    def _accumulate(self, grads, finite):
        """Add this micro-step's gradients (when finite) and return the window's mean, apply, window flag."""
        step = ops.assign_add(self.accum_step, Tensor(1, ms.int32))
        grads = ops.depend(grads, step)
        if finite:
            grads = ops.depend(grads, self.hyper_map(_add_into, self.grad_accum, grads))
        window_finite = ops.logical_and(ops.equal(self.window_finite.value(), 1), finite)
        window_finite = ops.depend(window_finite, ops.assign(self.window_finite, ops.cast(window_finite, ms.int32)))
        apply = ops.equal(self.accum_step.value() % self.accumulation_steps, 0)
        mean = self.hyper_map(ops.partial(_grad_scale, Tensor(1.0 / self.accumulation_steps, ms.float32)),
                              self.grad_accum)
        mean = ops.depend(mean, grads)
        return mean, apply, window_finite

    def _start_window(self):
        zeroed = self.hyper_map(_zero, self.grad_accum)
        return ops.depend(ops.assign(self.window_finite, Tensor(1, ms.int32)), zeroed)

    def _adjust_scale(self, finite):
        scale = self.scale_sense.value()
        counter = self.loss_scale_counter.value() + 1
        grow = counter >= self.scale_window
        up = ops.select(grow, scale * SCALE_FACTOR, scale)
        down = ops.maximum(scale / SCALE_FACTOR, Tensor(1.0, ms.float32))
        new_scale = ops.select(finite, up, down)
        new_counter = ops.select(ops.logical_and(finite, ops.logical_not(grow)), counter, ops.zeros_like(counter))
        return ops.depend(ops.assign(self.scale_sense, new_scale), ops.assign(self.loss_scale_counter, new_counter))

    def _record(self, loss, finite):
        """Add this step to ``step_stats``: loss sum and count (finite losses), bad steps, bad-step runs."""
        stats = self.step_stats.value()
        loss = ops.cast(loss, ms.float32).reshape(())
        loss_ok = ops.isfinite(loss)
        bad = ops.cast(ops.logical_not(finite), ms.float32)
        streak = (stats[STAT_STREAK] + 1.0) * bad
        new = ops.stack([stats[STAT_LOSS_SUM] + ops.select(loss_ok, loss, ops.zeros_like(loss)),
                         stats[STAT_LOSS_COUNT] + ops.cast(loss_ok, ms.float32),
                         stats[STAT_BAD] + bad,
                         streak,
                         ops.maximum(stats[STAT_PEAK], streak)])
        return ops.assign(self.step_stats, new)

    def _update_ema(self):
        updates = ops.assign_add(self.ema_updates, Tensor(1.0, ms.float32))
        decay = self.ema_decay * (1.0 - ops.exp(-updates / EMA_WARMUP))
        return self.hyper_map(ops.partial(_ema_update, decay), self.ema_params, self.model_params)


@dataclass
class StepStats:
    """What the steps since the last read did (see :class:`StepStatsReader`)."""
    loss_sum: float  # over the steps with a finite loss
    loss_count: int
    bad_steps: int  # steps with non-finite loss or gradients (not applied)
    bad_streak: int  # the current run of consecutive bad steps
    peak_streak: int  # the longest run that a step since the last read ended (whole, earlier steps included)

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.loss_count if self.loss_count else math.nan


class StepStatsReader:
    """Reads the statistics the step summed since the last read, and starts a new window.

    The window is restarted on the device by a one-op graph (about 0.2 ms here): writing the Parameter
    from the host (``set_data``) would make the next step re-bind its inputs, about 10 ms a step on the
    CPU. The current run of bad steps carries over, so a run longer than one read is seen whole.
    """

    def __init__(self, step: TrainStep) -> None:
        self.step = step
        self._restart = _RestartStepStats(step.step_stats)

    def read(self) -> StepStats:
        values = self.step.step_stats.asnumpy().astype(np.float64)
        self._restart()
        return StepStats(float(values[STAT_LOSS_SUM]), int(values[STAT_LOSS_COUNT]), int(values[STAT_BAD]),
                         int(values[STAT_STREAK]), int(values[STAT_PEAK]))


class _RestartStepStats(nn.Cell):
    """Zero ``step_stats`` in place except the current run of bad steps."""

    def __init__(self, step_stats: Parameter) -> None:
        super().__init__()
        self.step_stats = step_stats
        keep = np.zeros(5, np.float32)
        keep[STAT_STREAK] = 1.0
        self.keep = Tensor(keep)

    def construct(self):
        return ops.assign(self.step_stats, self.step_stats.value() * self.keep)


def ema_state(step: TrainStep) -> dict:
    """``{network name: EMA value}`` as NumPy arrays (for evaluation with the averaged weights)."""
    if not step.use_ema:
        return {}
    return {p.name[len("ema."):]: p.asnumpy() for p in step.ema_params}


def swap_in(network: nn.Cell, values: dict) -> dict:
    """Load ``values`` into the network's parameters of the same name; return the replaced values."""
    old = {}
    for p in network.get_parameters():
        if p.name in values:
            old[p.name] = p.asnumpy()
            p.set_data(Tensor(np.asarray(values[p.name]), p.dtype))
    return old
