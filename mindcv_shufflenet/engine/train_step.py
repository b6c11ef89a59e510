"""The one training step: forward, loss, gradients, all-reduce, loss scaling, clipping, update, EMA.

The same Cell runs on CPU and Ascend, standalone and under msrun. Loss scaling is written out with
plain ops instead of MindSpore's loss-scale managers, because those refuse dynamic scaling on CPU; the
overflow check (``all_finite``) works on every device. A step whose gradients are not finite changes
nothing but the loss-scale state: no optimizer update, no EMA update (also with a fixed scale, where
MindCV's ``drop_overflow_update: false`` would apply it and leave NaN weights).

Everything the step keeps between calls is a Parameter of this Cell, so one ``save_checkpoint(step)``
captures the whole training state (network, optimizer slots, EMA, loss scale, accumulation), under
MindCV's names where MindCV has them (``moments.*``, ``ema.*``, ``scale_sense``).
"""

from __future__ import annotations

from typing import Optional

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

# Dynamic loss scaling: halve on overflow (never below 1), double after this many clean steps.
SCALE_FACTOR = 2.0
SCALE_WINDOW = 2000
# MindCV's EMA warm-up: the effective decay grows as decay * (1 - exp(-updates / EMA_WARMUP)).
EMA_WARMUP = 2000.0

_grad_scale = ops.MultitypeFuncGraph("grad_scale")
_add_into = ops.MultitypeFuncGraph("add_into")
_zero = ops.MultitypeFuncGraph("zero")
_ema_update = ops.MultitypeFuncGraph("ema_update")


@_grad_scale.register("Tensor", "Tensor")
def _scale_one(scale, grad):
    return grad * ops.cast(scale, grad.dtype)


@_add_into.register("Tensor", "Tensor")
def _add_one(accumulator, grad):
    return ops.assign_add(accumulator, grad)


@_zero.register("Tensor")
def _zero_one(accumulator):
    return ops.assign(accumulator, ops.zeros_like(accumulator))


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
        return self.loss_fn(ops.cast(logits, ms.float32), label)


class TrainStep(nn.Cell):
    """One optimisation step per call: ``loss, finite, scale = step(image, label)``.

    Args:
        network: the model (already cast by ``auto_mixed_precision`` if amp is on).
        loss_fn: ``loss_fn(logits_float32, label) -> scalar``.
        optimizer: built over ``network.trainable_params()`` with ``loss_scale=1`` (gradients reach it
            unscaled).
        loss_scale: the fixed scale, or the initial dynamic one.
        dynamic_loss_scale: adjust the scale (halve on overflow, double after SCALE_WINDOW clean steps).
        clip_grad_norm: clip gradients to this global norm (None: off).
        ema_decay: keep ``ema.<name>`` copies of every network parameter (None: off).
        accumulation_steps: apply the mean gradient of this many calls once.
        gradient_reducer: ``nn.DistributedGradReducer`` under data parallel, else None.
    """

    def __init__(self, network: nn.Cell, loss_fn: nn.Cell, optimizer: nn.Optimizer, *, loss_scale: float = 1.0,
                 dynamic_loss_scale: bool = False,
                 clip_grad_norm: Optional[float] = None, ema_decay: Optional[float] = None,
                 accumulation_steps: int = 1, gradient_reducer: Optional[nn.Cell] = None) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.net_with_loss = NetWithLoss(network, loss_fn)
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.hyper_map = ops.HyperMap()
        self.reducer = gradient_reducer
        self.use_reducer = gradient_reducer is not None

        self.scale_sense = Parameter(Tensor(loss_scale, ms.float32), name="scale_sense", requires_grad=False)
        self.loss_scale_counter = Parameter(Tensor(0, ms.int32), name="loss_scale_counter", requires_grad=False)
        self.dynamic = dynamic_loss_scale

        self.clip = clip_grad_norm is not None
        self.clip_norm = float(clip_grad_norm or 1.0)

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

    def construct(self, image, label):
        scale = self.scale_sense.value()
        loss = self.net_with_loss(image, label)
        sens = ops.fill(loss.dtype, loss.shape, 1.0) * ops.cast(scale, loss.dtype)
        grads = self.grad(self.net_with_loss, self.weights)(image, label, sens)
        if self.use_reducer:
            grads = self.reducer(grads)
        grads = self.hyper_map(ops.partial(_grad_scale, 1.0 / scale), grads)

        if self.accumulate:
            grads = self._accumulate(grads)
            apply = ops.equal(self.accum_step % self.accumulation_steps, 0)
        else:
            apply = Tensor(True)
        finite = ms.amp.all_finite(grads)
        if self.dynamic:
            self._adjust_scale(finite)
        if self.clip:
            grads = ops.clip_by_global_norm(grads, self.clip_norm)
        # A non-finite update would leave NaN weights for good: never apply one, whatever the scale type.
        if ops.logical_and(apply, finite):
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self._update_ema())
        if self.accumulate:
            if apply:
                loss = ops.depend(loss, self._zero_accumulators())
        return loss, finite, scale

    def _accumulate(self, grads):
        step = ops.assign_add(self.accum_step, Tensor(1, ms.int32))
        grads = ops.depend(grads, step)
        summed = self.hyper_map(_add_into, self.grad_accum, grads)
        summed = ops.depend(summed, step)
        return self.hyper_map(ops.partial(_grad_scale, Tensor(1.0 / self.accumulation_steps, ms.float32)),
                              self.grad_accum)

    def _zero_accumulators(self):
        return self.hyper_map(_zero, self.grad_accum)

    def _adjust_scale(self, finite):
        scale = self.scale_sense.value()
        counter = self.loss_scale_counter.value() + 1
        grow = counter >= SCALE_WINDOW
        up = ops.select(grow, scale * SCALE_FACTOR, scale)
        down = ops.maximum(scale / SCALE_FACTOR, Tensor(1.0, ms.float32))
        new_scale = ops.select(finite, up, down)
        new_counter = ops.select(ops.logical_and(finite, ops.logical_not(grow)), counter, ops.zeros_like(counter))
        ops.assign(self.scale_sense, new_scale)
        ops.assign(self.loss_scale_counter, new_counter)

    def _update_ema(self):
        updates = ops.assign_add(self.ema_updates, Tensor(1.0, ms.float32))
        decay = self.ema_decay * (1.0 - ops.exp(-updates / EMA_WARMUP))
        return self.hyper_map(ops.partial(_ema_update, decay), self.ema_params, self.model_params)


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
