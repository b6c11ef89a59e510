"""The operations only an Ascend NPU runs, in one place, and the CPU stand-ins that let their code compile and
run here.

Two things in a training run exist only on Ascend:

- the **float-status register**: on Ascend 910A (and 910B in saturation mode) an fp16 overflow saturates
  instead of becoming Inf, so overflow is read from a sticky device register (``NPUGetFloatStatusV2``) and
  cleared (``NPUClearFloatStatusV2``) around each step, as MindSpore's own ``amp.all_finite`` does;
- **dataset sinking**: ``ms.data_sink`` moves the dataset into a device queue and compiles the step with the
  queue's ``GetNext`` in one graph.

Both are built here where MindSpore's graph parser accepts them (primitives made in ``__init__``, never an
``import`` inside a function that ``construct`` reaches). The testing switch ``MINDCV_SHUFFLENET_ASCEND_STANDIN``
(``910A``, ``910B`` or ``910B-saturation``) makes a CPU process take the Ascend path with stand-ins of the same
signatures, shapes and dtypes:

- the register's clear and read take and give the same int32[8] status vectors; what the NPU's ops write
  into the register by themselves on an overflow, the stand-in writes into that vector from the gradients'
  finiteness;
- ``data_sink`` reads the same dataset through a host iterator that loops over it as the device queue does,
  and compiles ``fn`` with the same ``jit`` settings.

What differs from an NPU is only the device and these stand-ins (see docs: "On Ascend").
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.ops.operations.math_ops import NPUClearFloatStatusV2, NPUGetFloatStatusV2

STANDIN_ENV = "MINDCV_SHUFFLENET_ASCEND_STANDIN"
# The chips a stand-in run behaves as: 910A reads overflow from the register; 910B does only in saturation mode
# (MS_ASCEND_CHECK_OVERFLOW_MODE=SATURATION_MODE), else it sees Inf/NaN like a CPU.
STANDIN_CHIPS = ("910A", "910B", "910B-saturation")
STATUS_SIZE = 8  # NPUGetFloatStatusV2 / NPUClearFloatStatusV2 work on an int32[8] status vector


def standin_chip() -> Optional[str]:
    """The chip the stand-ins behave as, or None when they are off (the normal case)."""
    value = os.environ.get(STANDIN_ENV, "").strip()
    if not value:
        return None
    if value not in STANDIN_CHIPS:
        raise ValueError(f"{STANDIN_ENV}={value!r} is not a chip the stand-ins know: use one of "
                         f"{', '.join(STANDIN_CHIPS)}, or unset it")
    return value


def standins_active() -> bool:
    """True when this CPU process takes the Ascend path with stand-ins."""
    if standin_chip() is None:
        return False
    if ms.get_context("device_target") != "CPU":
        raise ValueError(f"{STANDIN_ENV} replaces NPU operations on the CPU only: unset it on "
                         f"{ms.get_context('device_target')}")
    return True


def ascend_path(device: str) -> bool:
    """Whether a run on ``device`` takes the Ascend-only branches (sinking, Ascend jit level, float status):
    on Ascend, and on the CPU with the stand-ins on."""
    return device == "Ascend" or (device == "CPU" and standin_chip() is not None)


def uses_float_status_register() -> bool:
    """True on Ascend 910A, and on 910B in saturation mode, where overflow is read from the status register
    (or when the stand-ins behave as such a chip)."""
    if standins_active():
        return standin_chip() in ("910A", "910B-saturation")
    if ms.get_context("device_target") != "Ascend":
        return False
    try:  # MindSpore's own test (mindspore/amp.py): private, so any failure means "not that kind of chip"
        from mindspore._c_expression import MSContext
        soc = MSContext.get_instance()
        if soc.ascend_soc_supports_feature("amp_loss_scale_train_classic_target"):  # 910A
            return True
        return (soc.ascend_soc_supports_feature("train_hq_dtype_line")  # 910B
                and os.environ.get("MS_ASCEND_CHECK_OVERFLOW_MODE") == "SATURATION_MODE")
    except Exception:  # pylint: disable=broad-except
        return False


# ----------------------------------------------------------------------------------------------- float status

class _ClearStatusStandIn(nn.Cell):
    """NPUClearFloatStatusV2's stand-in: int32[8] in, a cleared (zero) int32[8] status out."""

    def construct(self, status):
        return ops.zeros_like(status)


class _GetStatusStandIn(nn.Cell):
    """NPUGetFloatStatusV2's stand-in: int32[8] in, the status read out (int32[8], non-zero after an overflow).

    An NPU's register is device state that every op sets on overflow; here the state travels in the status
    vector itself (see :meth:`FloatStatus.grads_finite`), so the read is the identity.
    """

    def construct(self, status):
        return status + 0


class FloatStatus(nn.Cell):
    """Clear the float-status register before the forward pass; read (and clear) it after the gradients.

    ``clear(x)`` returns ``x`` after the clear; ``grads_finite(grads)`` is a bool scalar, False when an op of
    the step overflowed. On an NPU the read mirrors ``mindspore.amp.all_finite``'s 910A branch.
    """

    def __init__(self, standin: bool = False) -> None:
        super().__init__(auto_prefix=False)
        self.standin = standin
        self.status = Tensor(np.zeros(STATUS_SIZE, np.int32))
        if standin:
            self.get_status = _GetStatusStandIn()
            self.clear_status = _ClearStatusStandIn()
        else:
            self.get_status = NPUGetFloatStatusV2()
            self.clear_status = NPUClearFloatStatusV2()

    def clear(self, x):
        return ops.depend(x, self.clear_status(self.status))

    def grads_finite(self, grads):
        status = ops.depend(self.status, grads)
        if self.standin:  # what the NPU's ops write into the register by themselves when one overflows
            overflow = ops.logical_not(ms.amp.all_finite(grads))
            status = status + ops.cast(overflow, ms.int32)
        got = self.get_status(status)
        status = ops.depend(status, got)
        got = ops.depend(got, self.clear_status(status))
        return ops.equal(got, 0).all()


def float_status() -> Optional[FloatStatus]:
    """The float-status handling this process needs: None on a chip (or device) that sees Inf/NaN."""
    if not uses_float_status_register():
        return None
    return FloatStatus(standin=standins_active())


# ----------------------------------------------------------------------------------------------- sinking

def data_sink(fn: Callable, dataset, sink_size: int = 1, jit_config: Optional[ms.JitConfig] = None,
              input_signature=None) -> Callable:
    """``ms.data_sink`` on Ascend; with the stand-ins on, :func:`host_data_sink` (same signature)."""
    if standins_active():
        return host_data_sink(fn, dataset, sink_size, jit_config, input_signature)
    return ms.data_sink(fn, dataset, sink_size=sink_size, jit_config=jit_config, input_signature=input_signature)


def host_data_sink(fn: Callable, dataset, sink_size: int = 1, jit_config: Optional[ms.JitConfig] = None,
                   input_signature=None) -> Callable:
    """A CPU stand-in for ``ms.data_sink``: each call runs ``fn`` on the next ``sink_size`` batches of
    ``dataset`` and returns the last output.

    As the device queue does, the dataset is looped over (a call past its end starts it again), and ``fn`` is
    compiled as ``data_sink`` compiles its sink function: with ``jit`` at ``jit_config``'s level (``""``
    means O0), or run as it is without a ``jit_config``.
    """
    if not isinstance(sink_size, int) or sink_size <= 0:
        raise ValueError(f"The 'sink_size' must be positive, but got sink_size {sink_size}.")
    if input_signature is not None:
        raise ValueError("host_data_sink does not take an input_signature (the project never passes one)")
    batches = dataset.create_tuple_iterator(num_epochs=-1, do_copy=False)

    def sink_fun(*data):
        return fn(*data)

    if jit_config is not None:
        jit_level = jit_config.jit_config_dict.get("jit_level") or "O0"
        sink_fun = ms.jit(sink_fun, jit_level=jit_level)

    def next_batch():
        try:
            return next(batches)
        except StopIteration:  # an epoch of the iterator ends: the next one starts the dataset again
            return next(batches)

    def sink_process():
        out = None
        for _ in range(sink_size):
            out = sink_fun(*next_batch())
        return out

    return sink_process
