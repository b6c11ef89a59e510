"""Optimizers with MindCV's names, weight-decay filters and checkpoint layout.

MindCV's ``create_optimizer`` (``mindcv/optim/optim_factory.py``) builds MindSpore's own optimizers, so
their parameter (slot) names are what MindCV's training checkpoints hold besides the network's
parameters:

* ``momentum``, ``nesterov``: ``moments.<param>``, ``momentum``, ``learning_rate``, ``global_step``
* ``sgd``: ``accum.<param>``, ``stat.<param>``, ``momentum``, ``learning_rate``, ``global_step``
* ``adam``: ``moment1.<param>``, ``moment2.<param>``, ``beta1_power``, ``beta2_power`` (shape []),
  ``learning_rate``, ``global_step``
* ``adamw``: ``adam_m.<param>``, ``adam_v.<param>``, ``beta1_power``, ``beta2_power`` (shape [1]),
  ``learning_rate``, ``global_step``

With a per-step schedule, ``learning_rate`` is the whole schedule and ``global_step`` (int32, shape
[1]) indexes it; both are saved, so a resumed run continues the schedule where it stopped.

Weight decay is L2 in the gradient (``grad + wd * param``) for sgd/momentum/adam, as MindSpore applies
it; MindSpore multiplies ``wd`` by ``loss_scale`` when it builds the optimizer, so the decay stays the
nominal one when the gradients carry a fixed loss scale. ``adamw`` decays decoupled
(``lr * wd * param``), as MindCV's AdamW does.

Nesterov with ``nn.Momentum`` on the CPU: MindSpore 2.10's CPU ``ApplyMomentum`` kernel updates
``param -= lr * (grad + momentum * accum_before_this_step)`` instead of its documented (and PyTorch's)
``lr * (grad + momentum * accum_after_this_step)``; ``nn.SGD(nesterov=True)`` follows the documented
formula. MindCV's ShuffleNet recipes do not use Nesterov.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Dict, List, Sequence, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, jit, nn, ops
from mindspore.common.initializer import initializer

from ..constants import OPTIMIZERS, WEIGHT_DECAY_FILTERS, choose


def _classes(module, names: Sequence[str]) -> Tuple[type, ...]:
    return tuple(getattr(module, name) for name in names if isinstance(getattr(module, name, None), type))


# Layers whose parameters are normalization scales and shifts (MindSpore's and mint's).
_NORM_TYPES = _classes(nn, ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm",
                            "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")) + \
    _classes(nn.layer.normalization, ("_BatchNorm", "_InstanceNorm", "LayerNormExt")) + \
    _classes(ms.mint.nn, ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm",
                          "GroupNorm"))
# Layers whose ``weight`` the official ShuffleNet code decays: convolutions and fully connected layers.
_CONV_DENSE_TYPES = _classes(nn.layer.conv, ("_Conv",)) + _classes(nn, ("Dense", "Linear")) + \
    _classes(ms.mint.nn, ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear"))


def weight_decay_groups(net: nn.Cell, weight_decay: float, weight_decay_filter: str) -> List[dict]:
    """MindSpore group parameters deciding which trainable parameters of ``net`` get weight decay.

    Filters (MindCV's ``weight_decay_filter`` key, plus ``official``):

    * ``disable`` (MindCV's default): every trainable parameter is decayed, BatchNorm included.
    * ``auto``: MindCV passes the parameters ungrouped and MindSpore's ``nn.Optimizer`` decays those
      whose name contains neither ``beta`` nor ``gamma``: norm layers' scale/shift are spared, biases
      are decayed. Reproduced here by name, exactly.
    * ``norm_and_bias``: what MindCV's option is meant to do: no decay on the parameters of
      normalization layers nor on any ``bias``. Decided by the owning layer's type and the attribute
      name, where MindCV matches the substrings ``beta``/``gamma``/``bias`` anywhere in the full name
      (missing norms whose parameters are ``weight``/``bias``, such as ``mint.nn.LayerNorm``, and
      sparing any layer under a cell named e.g. ``gamma_head``); MindCV also accepts any misspelt filter
      as this one. Names from ``net.no_weight_decay()``, if the network defines it, are spared too, as
      in MindCV. For ShuffleNet (no biases, BatchNorm named gamma/beta) it equals ``auto``.
    * ``official``: the official ShuffleNet code's rule: decay only the ``weight`` of convolution and
      fully connected layers (decided by the owning Cell's type; the official code tests for
      "weight" in the name and ndim > 1, which selects the same tensors in ShuffleNet).

    Returns ``[{"params": decayed, "weight_decay": wd}, {"params": others, "weight_decay": 0.0},
    {"order_params": all}]`` (empty groups left out); ``order_params`` keeps the optimizer's
    parameters, hence its checkpoint, in the network's order.
    """
    weight_decay = _non_negative("weight_decay", weight_decay)
    rule = _filter_name(weight_decay_filter)
    params = list(net.trainable_params())
    if rule == "disable":
        decayed = set(id(p) for p in params)
    elif rule == "auto":
        decayed = set(id(p) for p in params if "beta" not in p.name and "gamma" not in p.name)
    else:
        owners = _owners(net)
        if rule == "norm_and_bias":
            spared = set(getattr(net, "no_weight_decay", lambda: ())())
            decayed = set(
                id(p) for p in params
                if not isinstance(owners[id(p)][0], _NORM_TYPES) and owners[id(p)][1] != "bias"
                and p.name not in spared)
        else:  # official
            decayed = set(
                id(p) for p in params
                if isinstance(owners[id(p)][0], _CONV_DENSE_TYPES) and owners[id(p)][1] == "weight")
    groups = []
    with_decay = [p for p in params if id(p) in decayed]
    without_decay = [p for p in params if id(p) not in decayed]
    if with_decay:
        groups.append({"params": with_decay, "weight_decay": weight_decay})
    if without_decay:
        groups.append({"params": without_decay, "weight_decay": 0.0})
    groups.append({"order_params": params})
    return groups


def create_optimizer(
    net: nn.Cell,
    opt: str,
    lr: Union[float, np.ndarray, Tensor, Sequence[float]],
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    weight_decay_filter: str = "disable",
    use_nesterov: bool = False,
    loss_scale: float = 1.0,
    eps: float = 1e-8,
    beta1: float = 0.9,
    beta2: float = 0.999,
) -> nn.Optimizer:
    """An optimizer over ``net``'s trainable parameters, built as MindCV builds it.

    Args:
        net: the network (its trainable parameters, in order).
        opt: ``sgd`` (``nn.SGD``), ``momentum`` (``nn.Momentum``, MindCV's ShuffleNet recipes),
            ``nesterov`` (``nn.Momentum`` with Nesterov; in MindCV this name only has Nesterov if
            ``use_nesterov`` is also set), ``adam`` (``nn.Adam``) or ``adamw`` (MindCV's AdamW:
            bias-corrected Adam plus ``lr * wd * param``).
        lr: a constant, or one value per step (e.g. from ``build_lr_schedule``) that the optimizer
            indexes by its ``global_step``; running past the end of the schedule is an error.
        momentum: momentum of sgd/momentum/nesterov.
        weight_decay, weight_decay_filter: see :func:`weight_decay_groups`.
        use_nesterov: Nesterov momentum for sgd/momentum, Nesterov-Adam for adam (MindCV's key).
        loss_scale: the fixed loss scale the gradients carry; the optimizer divides it out (the
            weight decay keeps its nominal strength).
        eps, beta1, beta2: Adam's constants (MindCV's AdamW and MindSpore's Adam default to these).

    Raises:
        ValueError: unknown optimizer or filter name (with the closest valid one), or a bad value.
    """
    name = choose("opt", opt, OPTIMIZERS)
    learning_rate = _learning_rate(lr)
    momentum = _non_negative("momentum", momentum)
    if momentum >= 1.0:
        raise ValueError(f"momentum must be below 1, got {momentum}")
    loss_scale = _positive("loss_scale", loss_scale)
    if not isinstance(use_nesterov, (bool, np.bool_)):
        raise ValueError(f"use_nesterov must be true or false, got {use_nesterov!r}")
    groups = weight_decay_groups(net, weight_decay, weight_decay_filter)

    if name == "sgd":
        if use_nesterov and momentum == 0.0:
            raise ValueError("use_nesterov needs momentum > 0")
        return nn.SGD(groups, learning_rate=learning_rate, momentum=momentum, weight_decay=0.0,
                      nesterov=bool(use_nesterov), loss_scale=loss_scale)
    if name in ("momentum", "nesterov"):
        return nn.Momentum(groups, learning_rate=learning_rate, momentum=momentum, weight_decay=0.0,
                           loss_scale=loss_scale, use_nesterov=bool(use_nesterov) or name == "nesterov")
    eps = _positive("eps", eps)
    for key, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 < _positive(key, beta) < 1.0:
            raise ValueError(f"{key} must be in (0, 1), got {beta}")
    if name == "adam":
        return nn.Adam(groups, learning_rate=learning_rate, beta1=float(beta1), beta2=float(beta2), eps=eps,
                       weight_decay=0.0, loss_scale=loss_scale, use_nesterov=bool(use_nesterov))
    return AdamW(groups, learning_rate=learning_rate, beta1=float(beta1), beta2=float(beta2), eps=eps,
                 loss_scale=loss_scale)


_adamw_update = ops.MultitypeFuncGraph("adamw_update")


@_adamw_update.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Bool", "Tensor",
                        "Tensor", "Tensor", "Tensor")
def _adamw_update_tensor(beta1_power, beta2_power, beta1, beta2, eps, lr, weight_decay, decay_flag, param, m, v,
                         gradient):
    """One AdamW step of one parameter, in float32, as MindCV's ``mindcv/optim/adamw.py`` computes it."""
    param32 = ops.cast(param, ms.float32)
    grad32 = ops.cast(gradient, ms.float32)
    next_m = beta1 * ops.cast(m, ms.float32) + (1.0 - beta1) * grad32
    next_v = beta2 * ops.cast(v, ms.float32) + (1.0 - beta2) * ops.square(grad32)
    update = (next_m / (1.0 - beta1_power)) / (eps + ops.sqrt(next_v / (1.0 - beta2_power)))
    if decay_flag:
        update = weight_decay * param32 + update
    next_param = param32 - ops.reshape(lr * update, ops.shape(param32))
    next_param = ops.depend(next_param, ops.assign(param, ops.cast(next_param, param.dtype)))
    next_param = ops.depend(next_param, ops.assign(m, ops.cast(next_m, m.dtype)))
    next_param = ops.depend(next_param, ops.assign(v, ops.cast(next_v, v.dtype)))
    return ops.cast(next_param, param.dtype)


class AdamW(nn.Optimizer):
    """MindCV's AdamW: Adam with bias correction and decoupled weight decay
    ``param -= lr * (m_hat / (eps + sqrt(v_hat)) + wd * param)``; slots ``adam_m.*``, ``adam_v.*``,
    ``beta1_power``, ``beta2_power`` as in MindCV's checkpoints.

    Unlike MindCV's class, it advances ``global_step`` itself (MindSpore 2.x's ``get_lr`` no longer
    does, which would freeze a per-step schedule at its first value). Use :func:`create_optimizer` to
    build it with MindCV's filters.
    """

    def __init__(self, params, learning_rate=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, loss_scale: float = 1.0) -> None:
        # The base class would multiply the weight decay by loss_scale (right for decay added to scaled
        # gradients, wrong for decoupled decay): build it unscaled and only unscale the gradients.
        super().__init__(learning_rate, params, weight_decay, 1.0)
        self.loss_scale = float(loss_scale)
        self.reciprocal_scale = Tensor(1.0 / self.loss_scale, ms.float32)
        self.need_scale = self.loss_scale != 1.0
        self.beta1 = Tensor(np.array([beta1], np.float32))
        self.beta2 = Tensor(np.array([beta2], np.float32))
        self.eps = Tensor(np.array([eps], np.float32))
        self.moments1 = self._parameters.clone(prefix="adam_m", init="zeros")
        self.moments2 = self._parameters.clone(prefix="adam_v", init="zeros")
        self.beta1_power = Parameter(initializer(1, [1], ms.float32), name="beta1_power")
        self.beta2_power = Parameter(initializer(1, [1], ms.float32), name="beta2_power")
        if self.is_group:
            self._decay_values = self.weight_decay
        else:
            self._decay_values = tuple(self.weight_decay for _ in self._parameters)
        self._decay_flags = tuple(bool(flag) and self.exec_weight_decay for flag in self.decay_flags)

    @jit
    def construct(self, gradients):
        """Apply one step of ``gradients`` (a tuple matching the parameters)."""
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        beta1_power = self.beta1_power * self.beta1
        self.beta1_power = beta1_power
        beta2_power = self.beta2_power * self.beta2
        self.beta2_power = beta2_power
        return self.hyper_map(
            ops.partial(_adamw_update, beta1_power, beta2_power, self.beta1, self.beta2, self.eps, lr),
            self._decay_values, self._decay_flags, self._parameters, self.moments1, self.moments2, gradients)


def _owners(net: nn.Cell) -> Dict[int, Tuple[nn.Cell, str]]:
    """For each parameter (by id): the Cell that holds it directly and its attribute name there."""
    owners: Dict[int, Tuple[nn.Cell, str]] = {}
    for _, cell in net.cells_and_names():
        for attr, param in cell.parameters_and_names(expand=False):
            owners.setdefault(id(param), (cell, attr.rsplit(".", 1)[-1]))
    return owners


def _learning_rate(lr) -> Union[float, Tensor]:
    if isinstance(lr, Tensor):
        lr = lr.asnumpy()
    if isinstance(lr, Real) and not isinstance(lr, (bool, np.bool_)):
        return _non_negative("lr", lr)
    values = np.asarray(lr, dtype=np.float64) if isinstance(lr, (np.ndarray, list, tuple)) else None
    if values is None or values.ndim > 1:
        raise ValueError(f"lr must be a number or a 1-D array of per-step values, got {type(lr).__name__}")
    if values.ndim == 0:
        return _non_negative("lr", float(values))
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("lr schedule must be a non-empty array of finite values >= 0")
    return Tensor(values.astype(np.float32))


def _filter_name(weight_decay_filter: str) -> str:
    return choose("weight_decay_filter", weight_decay_filter, WEIGHT_DECAY_FILTERS)


def _non_negative(key: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _positive(key: str, value) -> float:
    if _non_negative(key, value) == 0.0:
        raise ValueError(f"{key} must be > 0, got {value!r}")
    return float(value)
