"""Converters from other checkpoint layouts to this project's, on plain ``name -> numpy array`` maps.

- :func:`grouped_from_split_convs`: MindCV main's split-conv V1 layout (applied when loading).
- :func:`from_torchvision_v2`: torchvision's ShuffleNetV2 (names, channel order, widths, fc bias).
- :func:`from_megvii_v2`, :func:`from_megvii_v1`, :func:`from_megvii_v2_plus`, :func:`from_megvii_v2_large`:
  the official code's, with its BGR 0-255 input (V2.Large: minus a mean image) folded into the stem.
- :func:`convert_state`: any of the last two by source name, checked against a registered model.

PyTorch is needed only to read ``.pth`` files (:func:`read_source_weights`); ``.npz`` and
``.safetensors`` state dicts convert without it.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from ..checkpoints.mindcv_v1 import grouped_from_split_convs
from .common import SOURCES, ConvertedWeights, fold_bgr255_stem, read_source_weights
from .megvii import from_megvii, from_megvii_v1, from_megvii_v2, from_megvii_v2_plus
from .megvii_large import from_megvii_v2_large, read_mean_image
from .torchvision import from_torchvision_v2, stage_permutations

__all__ = [
    "grouped_from_split_convs", "from_torchvision_v2", "from_megvii_v2", "from_megvii_v1", "from_megvii_v2_plus",
    "from_megvii_v2_large", "read_mean_image", "from_megvii",
    "fold_bgr255_stem", "stage_permutations", "convert_state", "read_source_weights", "ConvertedWeights",
    "SOURCES",
]


def convert_state(source: str, state: Mapping[str, np.ndarray], model_name: Optional[str] = None,
                  exact_border: bool = True, mean_image: Optional[np.ndarray] = None) -> ConvertedWeights:
    """Convert a ``source`` ("torchvision" or "megvii") state dict, checking it is ``model_name``'s.

    Args:
        source: where the weights come from.
        state: the source state dict, ``name -> array`` (see :func:`read_source_weights`).
        model_name: a registered model; the weights' widths must be its widths.
        exact_border: (megvii) record ``stem_pad_value`` so that the folded input is exact at the image
            border too; False gives a plain network that differs there (see ``convert.megvii``).
        mean_image: (megvii, ShuffleNetV2.Large) the official per-pixel mean image, (H, W, 3) BGR
            (:func:`read_mean_image`).

    Raises:
        ValueError: unknown source, a file of another kind, or weights of another width.
    """
    from ..models.registry import canonical_model_name

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    name = canonical_model_name(model_name) if model_name else None
    if source == "torchvision":
        if name and not name.startswith("shufflenet_v2"):
            raise ValueError(f"torchvision has no ShuffleNet V1: {name} cannot come from torchvision")
        converted = from_torchvision_v2(state)
    elif name and name.startswith("shufflenet_v1"):
        converted = from_megvii_v1(state, exact_border=exact_border)
    elif name and name.startswith("shufflenet_v2_plus"):
        converted = from_megvii_v2_plus(state, exact_border=exact_border)
    elif name in ("shufflenet_v2_large", "shufflenet_v2_exlarge"):
        converted = from_megvii_v2_large(state, mean_image, exact_border=exact_border)
    elif name:
        converted = from_megvii_v2(state, exact_border=exact_border)
    else:
        converted = from_megvii(state, exact_border=exact_border, mean_image=mean_image)
    if name:
        found = converted.matching_model()
        if found != name:
            what = found or f"a {converted.architecture} with channels {converted.channels}" + (
                f", groups {converted.groups}" if converted.groups else "")
            raise ValueError(f"these {source} weights are {what}, not {name}")
    return converted
