"""MindCV's two ShuffleNet V1 layouts.

MindCV 0.3.0 (this project's layout) stores each grouped 1x1 conv as one tensor
``<conv>.weight`` of shape [out, in/g, 1, 1]. MindCV's current main splits it into g dense convs
``<conv>.convs.{k}.weight`` of shape [out/g, in/g, 1, 1]; group k's output channels are rows
``k*out/g .. (k+1)*out/g`` of the grouped tensor, so the conversion is an exact concatenation.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping

import numpy as np

_SPLIT_CONV = re.compile(r"^(?P<conv>.+)\.convs\.(?P<k>\d+)\.weight$")


def grouped_from_split_convs(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Merge every ``<conv>.convs.{k}.weight`` family into ``<conv>.weight``; other entries pass through."""
    merged: Dict[str, np.ndarray] = {}
    parts: Dict[str, Dict[int, np.ndarray]] = {}
    for name, value in state.items():
        match = _SPLIT_CONV.match(name)
        if match:
            parts.setdefault(match["conv"], {})[int(match["k"])] = value
        else:
            merged[name] = value
    for conv, by_group in parts.items():
        if sorted(by_group) != list(range(len(by_group))):
            raise ValueError(f"{conv}.convs: groups {sorted(by_group)} are not 0..{len(by_group) - 1}")
        target = f"{conv}.weight"
        if target in merged:
            raise ValueError(f"checkpoint holds both {target} and {conv}.convs.*: which layout is it?")
        merged[target] = np.concatenate([by_group[k] for k in range(len(by_group))], axis=0)
    return merged
