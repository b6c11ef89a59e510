"""Argument checks shared by the data modules: each raises ValueError naming the argument and the value."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Tuple

import numpy as np


def is_finite_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_prob(name: str, value: Any) -> float:
    if not is_finite_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    if not is_finite_number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_pair(name: str, value: Any) -> Tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_finite_number(v) for v in value)
            or not 0 < value[0] <= value[1]):
        raise ValueError(f"{name} must be a pair (min, max) with 0 < min <= max, got {value!r}")
    return float(value[0]), float(value[1])


def check_shards(num_shards: Any, shard_id: Any) -> None:
    check_int("num_shards", num_shards, 1)
    if isinstance(shard_id, bool) or not isinstance(shard_id, (int, np.integer)) or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must be an integer in [0, num_shards - 1] = [0, {num_shards - 1}], "
                         f"got {shard_id!r}")
