"""Strict weight loading: every parameter of the network comes from the file, or loading fails.

MindSpore's ``load_param_into_net`` only warns about parameters it did not find, which leaves them at
their random initialisation; MindCV's main loads its own released V1 checkpoints that way with 94
parameters untouched. Here anything missing, mis-shaped or unexplained is an error listing the names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Mapping

import mindspore as ms
import numpy as np
from mindspore import nn

from ..convert import grouped_from_split_convs

# What a training checkpoint holds besides the network: optimizer slots, EMA copies, loss-scale and
# progress counters. Ignored when loading a network (``ema=True`` takes the EMA copy instead).
AUXILIARY_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "ema.", "stat.", "swa.", "grad_accum.")
AUXILIARY_NAMES = frozenset({
    "global_step", "momentum", "learning_rate", "scale_sense", "loss_scale", "current_iterator_step",
    "last_overflow_iterator_step", "epoch_num", "step_num", "beta1_power", "beta2_power", "weight_decay",
    # written by this project's trainer (engine/train_step.py, engine/checkpoint.py)
    "loss_scale_counter", "ema_updates", "accum_step", "epoch", "best_top1", "best_epoch", "top1", "top5",
})

RELEASE_URL = "https://download.mindspore.cn/toolkits/mindcv/shufflenet/"
# MindCV's released ImageNet checkpoints (trained on Ascend 910 with MindCV's recipes).
RELEASED_CHECKPOINTS = {
    "shufflenet_v2_x0_5": "shufflenetv2/shufflenet_v2_x0_5-8c841061.ckpt",
    "shufflenet_v2_x1_0": "shufflenetv2/shufflenet_v2_x1_0-0da4b7fa.ckpt",
    "shufflenet_v2_x1_5": "shufflenetv2/shufflenet_v2_x1_5-00b56131.ckpt",
    "shufflenet_v2_x2_0": "shufflenetv2/shufflenet_v2_x2_0-ed8e698d.ckpt",
    "shufflenet_v1_g3_05": "shufflenetv1/shufflenet_v1_g3_05-42cfe109.ckpt",
    "shufflenet_v1_g3_10": "shufflenetv1/shufflenet_v1_g3_10-245f0ccf.ckpt",
}
_MAX_LISTED = 12


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the network: names are missing, mis-shaped or unexpected."""


def read_checkpoint(path: str | os.PathLike) -> Dict[str, np.ndarray]:
    """The tensors of a MindSpore checkpoint (``.ckpt`` or ``.safetensors``) as ``name -> array``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"cannot read checkpoint {path}: the file is empty (0 bytes)")
    fmt = "safetensors" if path.suffix == ".safetensors" else "ckpt"
    try:  # crc_check: a file saved with a CRC (as training saves them) must match it; others load as before
        params = ms.load_checkpoint(str(path), format=fmt, crc_check=fmt == "ckpt")
    except Exception as err:  # MindSpore raises ValueError/RuntimeError/protobuf errors for bad files
        raise ValueError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    # Non-tensor entries (strings appended as metadata) are not weights.
    return {name: value.asnumpy() for name, value in params.items() if isinstance(value, ms.Tensor)}


def load_checkpoint(net: nn.Cell, path: str | os.PathLike, ema: bool = False,
                    exclude: Iterable[str] = ()) -> None:
    """Load a checkpoint file into ``net`` strictly; see :func:`load_state_dict`."""
    try:
        load_state_dict(net, read_checkpoint(path), ema=ema, exclude=exclude)
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path}: {err}") from None


def load_state_dict(net: nn.Cell, state: Mapping[str, np.ndarray], ema: bool = False,
                    exclude: Iterable[str] = ()) -> None:
    """Copy ``state`` into ``net``'s parameters, all or nothing.

    Every network parameter must be present with the right shape, except those whose names start with
    a prefix in ``exclude`` (which keep their current values). Optimizer slots, EMA copies and counters
    in ``state`` are ignored; any other name the network does not have is an error, since it means the
    file belongs to a different architecture. MindCV's split-conv V1 layout is converted first.

    Raises:
        CheckpointMismatchError: listing the missing, mis-shaped and unexpected names. Nothing is
            copied into the network in that case.
    """
    exclude = tuple(exclude)
    state = grouped_from_split_convs(state)
    if ema:
        state = {name[len("ema."):]: value for name, value in state.items() if name.startswith("ema.")}
        if not state:
            raise CheckpointMismatchError("ema=True, but the checkpoint holds no EMA weights (ema.*)")

    params = {name: p for name, p in net.parameters_and_names() if not name.startswith(exclude)}
    missing = [name for name in params if name not in state]
    mismatched = [f"{name}: checkpoint {tuple(state[name].shape)}, network {tuple(p.shape)}"
                  for name, p in params.items() if name in state and tuple(state[name].shape) != tuple(p.shape)]
    own_names = {name for name, _ in net.parameters_and_names()}
    unexpected = [name for name in state if name not in own_names and not _is_auxiliary(name)]
    problems = []
    if missing:
        problems.append(_listing(f"{len(missing)} of the network's {len(params)} parameters are missing", missing))
    if mismatched:
        problems.append(_listing(f"{len(mismatched)} parameters have the wrong shape", mismatched))
    if unexpected:
        problems.append(_listing(f"{len(unexpected)} entries are not parameters of this network", unexpected))
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint does not fit {type(net).__name__} (wrong model name or width?): " + "; ".join(problems))

    for name, p in params.items():
        p.set_data(ms.Tensor(np.asarray(state[name], dtype=ms.dtype_to_nptype(p.dtype))))


def pretrained_dir() -> Path:
    """Where released checkpoints are looked for: ``$MINDCV_SHUFFLENET_HOME`` or
    ``~/.cache/mindcv_shufflenet``, laid out as on the release server (``shufflenetv2/<file>.ckpt``)."""
    return Path(os.environ.get("MINDCV_SHUFFLENET_HOME", Path.home() / ".cache" / "mindcv_shufflenet"))


def load_pretrained(net: nn.Cell, model_name: str) -> None:
    """Load MindCV's released ImageNet weights for ``model_name`` from :func:`pretrained_dir`.

    Nothing is downloaded at run time (training clusters are often offline); a missing file is an error
    that names the URL and the place to put it. With ``num_classes != 1000`` the classifier keeps its
    initialisation (fine-tuning), and that is printed.
    """
    if model_name not in RELEASED_CHECKPOINTS:
        raise ValueError(f"no released ImageNet weights for {model_name} (released: "
                         f"{', '.join(RELEASED_CHECKPOINTS)}): train it, or pass checkpoint_path")
    relative = RELEASED_CHECKPOINTS[model_name]
    path = pretrained_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights for {model_name} are not at {path}: download "
                                f"{RELEASE_URL}{relative} there, or set MINDCV_SHUFFLENET_HOME")
    exclude = ()
    if getattr(net, "num_classes", 1000) != 1000:
        exclude = ("classifier.",)
        print(f"{model_name}: loading pretrained weights without the classifier "
              f"(num_classes={net.num_classes}, the checkpoint has 1000)")
    load_checkpoint(net, path, exclude=exclude)


def _is_auxiliary(name: str) -> bool:
    return name in AUXILIARY_NAMES or name.startswith(AUXILIARY_PREFIXES)


def _listing(headline: str, names: List[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{headline}: {shown}{more}"
