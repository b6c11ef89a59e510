"""One parsed graph per distinct unit structure: a shorter graph compile, safe against units
changed after they were built.

A ShuffleNet repeats the same unit many times (V2 1.0x: 16 units of 6 distinct structures). MindSpore's
``lazy_inline(policy="front")`` parses a cell's graph once and reuses it for every cell with the same
``cell_init_args`` string, which cuts the front end's work (the bulk of the first step's compile, see
``benchmarks/experiments/profile_compile.py``). The decorator keys on the constructor's arguments, so a unit changed
after construction (BatchNorm folded, a flag turned off, kernels switched back to MindSpore's) would run
the graph of an unchanged sibling. ``ReusedGraphUnit`` instead computes the key when the graph is parsed,
from what the unit holds then: every sub-cell's class, its plain attributes (flags, sizes, dtypes, the
train/eval state), its primitives' attributes and its parameters' shapes and dtypes. A value it cannot
describe (a hook function, say) is keyed by its identity: that unit then gets a graph of its own.

Used on the CPU and on Ascend (``MINDCV_SHUFFLENET_GRAPH_REUSE=off`` turns it off). The reuse is the front
end's alone: a unit sets ``no_inline = False`` (lazy_inline's policy "front"), so MindSpore 2.10 marks the
shared graph "inline" and not "cell reuse", inlines it during the front end's passes, and the back end
compiles one flat graph, as without reuse. MindSpore's Ascend-only back-end cell reuse (lazy_inline's
default policy) is never engaged. docs/speed-compile-and-input.md has the evidence; GPU is left out,
untested.
"""

from __future__ import annotations

import os
import types
from typing import Any, Dict

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.common.initializer import Initializer
from mindspore.ops.primitive import Primitive

__all__ = ["ReusedGraphUnit", "structure_key", "graph_reuse_enabled", "ENV_GRAPH_REUSE"]

ENV_GRAPH_REUSE = "MINDCV_SHUFFLENET_GRAPH_REUSE"

# Cell attributes that differ between identical cells without changing their graph (bookkeeping), or
# that the walk covers otherwise (sub-cells, parameters, the primitives' registry).
_BOOKKEEPING = {"_create_time", "_compile_cache", "_cells", "_params", "_params_list", "_primitives",
                "_cell_init_args", "_scope", "_auto_prefix", "_param_prefix", "_id", "arguments_key",
                "_jit_graph_name", "_compiled", "_phase_cache", "_exist_objs", "_exist_names", "_reuse_graph"}


# The devices whose compile this reuse was checked for (see the module's docstring).
REUSE_DEVICES = ("CPU", "Ascend")


def graph_reuse_enabled() -> bool:
    """Whether units built now share parsed graphs: on the CPU and Ascend, unless the environment switch is
    off."""
    if os.environ.get(ENV_GRAPH_REUSE, "on").strip().lower() in ("0", "off", "false", "no"):
        return False
    return ms.get_context("device_target") in REUSE_DEVICES


def _value_key(value: Any, children: Dict[int, str]) -> str:
    """A string that two values share only if a graph parsed with either is valid for both. ``children``:
    the owning cell's sub-cells by id, which ``structure_key`` keys on their own."""
    if value is None or isinstance(value, (bool, int, float, str, ms.dtype.Type)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({','.join(_value_key(v, children) for v in value)})"
    if isinstance(value, dict):
        items = sorted((repr(k), _value_key(v, children)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, nn.Cell):  # a sub-cell also held in a list (SequentialCell's cell_list), say
        return f"cell:{children[id(value)]}" if id(value) in children else f"Cell[{structure_key(value)}]"
    if isinstance(value, Parameter):
        return f"Parameter{tuple(value.shape)}:{value.dtype}:{value.requires_grad}"
    if isinstance(value, Tensor):  # a constant in the graph: its values count
        return f"Tensor{tuple(value.shape)}:{value.dtype}:{hash(value.asnumpy().tobytes())}"
    if isinstance(value, Primitive):  # the project's Custom ops are named by their kernel function
        return f"{type(value).__name__}{_value_key(dict(value.attrs), children)}"
    if isinstance(value, Initializer):  # used once, when the parameter was made
        return "Initializer"
    if isinstance(value, types.FunctionType) and value.__closure__ is None:
        return f"function:{value.__module__}.{value.__qualname__}"
    return f"{type(value).__qualname__}@{id(value)}"


def _counts(name: str, value: Any) -> bool:
    """Whether an attribute can change the cell's graph. MindSpore makes its ``_lazy_*`` hook registries
    on first use: empty, they are the same as not made yet."""
    if name in _BOOKKEEPING:
        return False
    return not (name.startswith("_lazy_") and not value)


def _cell_key(cell: nn.Cell) -> str:
    children = {id(sub): name for name, sub in cell.name_cells().items()}
    attributes = ",".join(f"{name}={_value_key(value, children)}" for name, value in sorted(vars(cell).items())
                          if _counts(name, value))
    parameters = ",".join(f"{name}={_value_key(p, children)}"
                          for name, p in cell._params.items())  # pylint: disable=protected-access
    return f"{type(cell).__module__}.{type(cell).__qualname__}({attributes};{parameters})"


def structure_key(cell: nn.Cell) -> str:
    """What ``cell``'s parsed graph depends on, as it is now: its sub-cells' classes, attributes and
    parameter shapes, in order (not parameter names or values)."""
    return "|".join(f"{name}:{_cell_key(sub)}" for name, sub in cell.cells_and_names())


class ReusedGraphUnit(nn.Cell):
    """A repeated unit of a network: in graph mode (CPU, Ascend), units of equal structure share one parsed
    graph (see the module's docstring). Subclasses call ``super().__init__()`` first, as for any Cell."""

    def __init__(self) -> None:
        super().__init__()
        self._reuse_graph = graph_reuse_enabled()
        if self._reuse_graph:
            self.no_inline = False  # lazy_inline's policy "front": reuse in the front end, inline after

    @property
    def cell_init_args(self) -> str:
        # MindSpore's parser reads this when it meets the unit; no attribute means no reuse.
        if not self._reuse_graph:
            raise AttributeError("cell_init_args")
        return "lazy_inline_" + structure_key(self)
