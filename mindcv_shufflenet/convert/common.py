"""What the converters share: the result type, reading source files, PyTorch -> MindSpore BatchNorm names, and
the official code's BGR 0-255 input folded into a stem conv (V1, V2, V2+ and ExLarge take it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from mindspore import nn

# PyTorch BatchNorm tensor -> MindSpore BatchNorm parameter.
BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
# PyTorch bookkeeping that is not a weight.
IGNORED_SUFFIXES = (".num_batches_tracked",)
SOURCES = ("torchvision", "megvii")


@dataclass
class ConvertedWeights:
    """Weights in this project's names and layout, with the architecture they fit.

    ``build()`` makes the network (the class ``architecture`` names, with ``channels``, ``groups`` (V1, Large),
    ``stage_repeats``, ``num_classes`` and ``options``) and loads ``state`` into it strictly.
    """

    state: Dict[str, np.ndarray]
    architecture: str  # the network class in ``models``: ShuffleNetV2, ShuffleNetV1, ShuffleNetV2Plus, ...
    channels: Tuple[int, ...]
    stage_repeats: Tuple[int, ...]
    num_classes: int
    options: Dict[str, Any] = field(default_factory=dict)
    groups: Optional[int] = None
    source: str = ""

    def build(self) -> nn.Cell:
        """The network these weights fit, with the weights loaded (strictly)."""
        from .. import models

        cls = getattr(models, self.architecture)
        extra = {"groups": self.groups} if self.groups else {}
        net = cls(self.channels, num_classes=self.num_classes, stage_repeats=self.stage_repeats, **extra,
                  **self.options)
        models.load_state_dict(net, self.state)
        return net

    def matching_model(self) -> Optional[str]:
        """The registered model name whose channel table these weights have (None for other widths)."""
        from ..models import (
            SHUFFLENET_V1_CHANNELS,
            SHUFFLENET_V2_CHANNELS,
            SHUFFLENET_V2_LARGE_CONFIGS,
            SHUFFLENET_V2_PLUS_CHANNELS,
            shufflenet_v2_plus,
        )

        if self.architecture == "ShuffleNetV2Large":
            variant = self.options.get("variant")
            config = SHUFFLENET_V2_LARGE_CONFIGS.get(variant, {})
            same = all(tuple(config.get(key, ())) == tuple(value) for key, value in (
                ("channels", self.channels), ("stage_repeats", self.stage_repeats),
                ("aux_channels", self.options.get("aux_channels", config.get("aux_channels", ())))))
            official = same and self.groups == config["groups"] and self.options.get("se_reduction") == config[
                "se_reduction"] if config else False
            return f"shufflenet_v2_{variant}" if official else None
        if self.architecture == "ShuffleNetV2Plus":
            official = (tuple(self.stage_repeats) == shufflenet_v2_plus.STAGE_REPEATS
                        and tuple(self.options.get("architecture", ())) == shufflenet_v2_plus.ARCHITECTURE)
            for size, channels in SHUFFLENET_V2_PLUS_CHANNELS.items():
                if official and tuple(channels) == tuple(self.channels):
                    return f"shufflenet_v2_plus_{size}"
            return None
        if tuple(self.stage_repeats) != (4, 8, 4):
            return None
        if self.architecture == "ShuffleNetV2":
            for width, channels in SHUFFLENET_V2_CHANNELS.items():
                if tuple(channels) == tuple(self.channels):
                    return f"shufflenet_v2_{width}"
        else:
            for width, channels in SHUFFLENET_V1_CHANNELS.get(self.groups, {}).items():
                if tuple(channels) == tuple(self.channels):
                    return f"shufflenet_v1_g{self.groups}_{width}"
        return None


def read_source_weights(path: str | os.PathLike) -> Dict[str, np.ndarray]:
    """A PyTorch state dict as ``name -> float array``, from ``.pth``/``.pt``/``.pth.tar``/``.pkl`` (needs
    torch), ``.npz`` or ``.safetensors``. A wrapping ``{"state_dict": ...}`` or ``{"model": ...}`` (the
    official code's checkpoints) is opened and DataParallel's ``module.`` prefixes are removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    name = path.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {key: data[key] for key in data.files}
        except Exception as err:
            raise ValueError(f"cannot read {path} as .npz: {str(err).splitlines()[0]}") from None
    elif name.endswith(".safetensors"):
        from safetensors.numpy import load_file

        try:
            state = load_file(str(path))
        except Exception as err:
            raise ValueError(f"cannot read {path} as safetensors: {str(err).splitlines()[0]}") from None
    else:
        state = _read_torch_file(path)
    return normalize_torch_state(state)


def _read_torch_file(path: Path) -> Dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise ValueError(f"reading {path.name} needs PyTorch (pip install torch); without it, save the state "
                         f"dict as .npz ({{name: tensor.numpy()}}) or .safetensors and convert that") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read {path} with torch.load: {str(err).splitlines()[0]}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict (name -> tensor)")
    state = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            state[key] = value.detach().cpu().float().numpy() if value.is_floating_point() else value.numpy()
    return state


def normalize_torch_state(state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Drop DataParallel's ``module.`` prefix and PyTorch's BatchNorm counters; arrays as NumPy."""
    out = {}
    for key, value in state.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        if key.startswith("module."):
            key = key[len("module."):]
        out[key] = np.asarray(value)
    return out


class SourceState:
    """A source state dict that hands out each tensor once, checks shapes, and finally reports leftovers."""

    def __init__(self, state: Mapping[str, np.ndarray], what: str) -> None:
        self.state = dict(state)
        self.what = what
        self.used: set = set()

    def __contains__(self, name: str) -> bool:
        return name in self.state

    def take(self, name: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
        if name not in self.state:
            raise ValueError(f"{self.what}: {name} is missing (is it the right kind of file and model?)")
        value = np.asarray(self.state[name], dtype=np.float64)
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"{self.what}: {name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
        self.used.add(name)
        return value

    def shape(self, name: str) -> Tuple[int, ...]:
        if name not in self.state:
            raise ValueError(f"{self.what}: {name} is missing (is it the right kind of file and model?)")
        return tuple(np.shape(self.state[name]))

    def check_all_used(self) -> None:
        left = sorted(set(self.state) - self.used)
        if left:
            shown = ", ".join(left[:8]) + (f" ... and {len(left) - 8} more" if len(left) > 8 else "")
            raise ValueError(f"{self.what}: {len(left)} entries do not belong to the network: {shown}")


def bn(src: SourceState, source_prefix: str, target_prefix: str, out: Dict[str, np.ndarray],
       perm: Optional[np.ndarray] = None) -> None:
    """Copy a PyTorch BatchNorm (``weight, bias, running_mean, running_var``) to MindSpore names,
    optionally permuting its channels."""
    for torch_name, ms_name in BN_NAMES.items():
        value = src.take(f"{source_prefix}.{torch_name}")
        out[f"{target_prefix}.{ms_name}"] = value if perm is None else value[perm]


def as_float32(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The arrays as contiguous float32, the dtype of the networks' parameters."""
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def fold_bgr255_stem(weight: np.ndarray, moving_mean: np.ndarray, mean: Sequence[float],
                     std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray, list]:
    """Fold "BGR, 0-255" into a stem conv ``weight`` [out, 3 (BGR), k, k] and its BatchNorm.

    Returns the conv weight for RGB input normalized by ``mean``/``std`` (0-255 scale, RGB order), the
    BatchNorm moving mean to go with it, and the per-channel padding value (``-mean/std``) that makes
    the result exact at the image border (see ``convert.megvii``).
    """
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"the stem conv weight has shape {weight.shape}, expected [out, 3, k, k]")
    rgb_weight = weight[:, ::-1].astype(np.float64) * std[None, :, None, None]
    pad_value = -mean / std
    shift = np.einsum("ochw,c->o", rgb_weight, pad_value)  # the padded conv minus the official one
    return rgb_weight, moving_mean.astype(np.float64) + shift, [float(v) for v in pad_value]
