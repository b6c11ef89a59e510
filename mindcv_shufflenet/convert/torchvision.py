"""torchvision's ShuffleNetV2 -> this project's (MindCV's) layout, exactly.

The two layouts compute the same function up to the order of channels:

- torchvision: a stride-1 unit sends the first half of its input through unchanged and the second half
  through ``branch2``, concatenates, then shuffles (output ``2j`` <- concat ``j``, ``2j+1`` <- concat
  ``h+j``); a stride-2 unit concatenates ``branch1`` and ``branch2`` (``h`` channels each) and shuffles.
- MindCV: a stride-1 unit sends the even channels through unchanged and the odd ones through
  ``branch_main`` and concatenates; a stride-2 unit concatenates ``branch_proj`` and ``branch_main``.

Follow one channel through a stage of ``h``-channel halves. In torchvision a channel at position ``p``
moves to ``2p`` while ``p < h`` and is consumed by the first unit that finds it at ``p >= h``; in MindCV
one at position ``m`` moves to ``m/2`` while ``m`` is even and is consumed when ``m`` is odd. So a channel
is consumed ``n`` units later, where ``n`` is the least with ``p * 2**n >= h`` (torchvision) or the number
of trailing zero bits of ``m`` (MindCV); position 0, and channels that outlive the stage, never are.
Ordering the outputs of each branch so that every channel is consumed by the same unit in both layouts
(within a branch the order is free: it is the order of the rows of the branch's last 1x1 conv and
BatchNorm) makes the two networks equal. Both layouts have exactly the same number of channels for
each consumption time, so such an order exists for every width; :func:`stage_permutations` finds it.

torchvision's stride-2 units give each branch ``out/2`` channels where MindCV's projection keeps the
input width (they differ in stage 2's first unit at 1.0x, 1.5x and 2.0x), and its ``fc`` has a bias:
the converted weights record ``proj_channels="half"``, ``classifier_bias=True`` and
``pool_padding="symmetric"`` (torchvision pads its stem max pool on every side).
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .common import ConvertedWeights, SourceState, as_float32, bn

__all__ = ["from_torchvision_v2", "stage_permutations", "TORCHVISION_OPTIONS"]

TORCHVISION_OPTIONS = {"pool_padding": "symmetric", "proj_channels": "half", "classifier_bias": True}
_BLOCK = re.compile(r"^stage(\d)\.(\d+)\.")


def _mindcv_time(m: int, remaining: int) -> int:
    """Units until MindCV consumes the channel at position ``m`` (``remaining`` means never)."""
    if m == 0:
        return remaining
    trailing = (m & -m).bit_length() - 1
    return min(trailing, remaining)


def _torchvision_time(p: int, half: int, remaining: int) -> int:
    """Units until torchvision consumes the channel at position ``p`` (``remaining`` means never)."""
    if p == 0:
        return remaining
    n = 0
    while p * 2 ** n < half and n < remaining:
        n += 1
    return n


def _pair_by_time(ms_positions: Sequence[int], tv_positions: Sequence[int], half: int,
                  remaining: int) -> Dict[int, int]:
    """Pair each MindCV position with a torchvision position consumed at the same time."""
    by_time: Dict[int, List[int]] = {}
    for p in tv_positions:
        by_time.setdefault(_torchvision_time(p, half, remaining), []).append(p)
    pairs = {}
    for m in ms_positions:
        pool = by_time.get(_mindcv_time(m, remaining))
        if not pool:
            raise ValueError(f"no channel order maps torchvision's stage of {2 * half} channels onto MindCV's")
        pairs[m] = pool.pop(0)
    return pairs


def stage_permutations(half: int, repeats: int) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray], List[np.ndarray]]:
    """How one stage of ``repeats`` units with ``2 * half`` output channels maps between the layouts.

    Returns ``(proj_rows, main_rows, unit_rows, after)``: the torchvision ``branch1`` / ``branch2``
    output channel for each MindCV ``branch_proj`` / ``branch_main`` output of the stride-2 unit; for
    each following stride-1 unit, the ``branch2`` output channel for each ``branch_main`` output; and
    for each unit, the torchvision position of each MindCV output channel (``after[-1]`` is what the
    next stage receives).
    """
    width = 2 * half
    remaining = repeats - 1
    proj = _pair_by_time(range(half), range(0, width, 2), half, remaining)
    main = _pair_by_time(range(half, width), range(1, width, 2), half, remaining)
    positions = np.array([proj[m] if m < half else main[m] for m in range(width)])
    proj_rows = np.array([proj[m] // 2 for m in range(half)])
    main_rows = np.array([main[m] // 2 for m in range(half, width)])
    after = [positions]
    unit_rows = []
    for unit in range(1, repeats):
        remaining = repeats - 1 - unit
        previous = after[-1]
        if (previous[1::2] < half).any() or (previous[0::2] >= half).any():
            raise AssertionError("channel orders are inconsistent")  # cannot happen: see the module doc
        new = _pair_by_time(range(half, width), range(1, width, 2), half, remaining)
        positions = np.concatenate([2 * previous[0::2], [new[m] for m in range(half, width)]])
        unit_rows.append(np.array([new[m] // 2 for m in range(half, width)]))
        after.append(positions)
    return proj_rows, main_rows, unit_rows, after


def from_torchvision_v2(state: Mapping[str, np.ndarray]) -> ConvertedWeights:
    """Convert a torchvision ``ShuffleNetV2`` state dict (``name -> array``, any widths) to this project's.

    Raises:
        ValueError: if the state dict is not a torchvision ShuffleNetV2 (names the first problem).
    """
    src = SourceState(state, "torchvision ShuffleNetV2 state dict")
    if "conv1.0.weight" not in src or "fc.weight" not in src:
        raise ValueError("not a torchvision ShuffleNetV2 state dict: conv1.0.weight or fc.weight is missing")
    repeats = []
    for stage in (2, 3, 4):
        units = {int(m[2]) for key in state if (m := _BLOCK.match(key)) and int(m[1]) == stage}
        if not units or units != set(range(len(units))):
            raise ValueError(f"not a torchvision ShuffleNetV2 state dict: stage{stage} units are {sorted(units)}")
        repeats.append(len(units))

    out: Dict[str, np.ndarray] = {}
    stem = src.shape("conv1.0.weight")[0]
    out["first_conv.0.weight"] = src.take("conv1.0.weight", (stem, 3, 3, 3))
    bn(src, "conv1.1", "first_conv.1", out)

    channels = [stem]
    width = stem
    before = np.arange(stem)  # torchvision position of each MindCV channel entering the stage
    block = 0
    for stage, stage_repeats in zip((2, 3, 4), repeats):
        half = src.shape(f"stage{stage}.0.branch2.0.weight")[0]
        proj_rows, main_rows, unit_rows, after = stage_permutations(half, stage_repeats)
        tv, ms = f"stage{stage}.0", f"features.{block}"
        # stride-2 unit: both branches read the whole input (columns follow the input's order)
        out[f"{ms}.branch_proj.0.weight"] = src.take(f"{tv}.branch1.0.weight", (width, 1, 3, 3))[before]
        bn(src, f"{tv}.branch1.1", f"{ms}.branch_proj.1", out, before)
        proj = src.take(f"{tv}.branch1.2.weight", (half, width, 1, 1))
        out[f"{ms}.branch_proj.2.weight"] = proj[proj_rows][:, before]
        bn(src, f"{tv}.branch1.3", f"{ms}.branch_proj.3", out, proj_rows)
        out[f"{ms}.branch_main.0.weight"] = src.take(f"{tv}.branch2.0.weight", (half, width, 1, 1))[:, before]
        _main_rest(src, tv, ms, half, main_rows, out)
        for unit in range(1, stage_repeats):
            tv, ms = f"stage{stage}.{unit}", f"features.{block + unit}"
            main_input = after[unit - 1][1::2] - half  # torchvision's branch2 input channel of each MindCV one
            out[f"{ms}.branch_main.0.weight"] = src.take(f"{tv}.branch2.0.weight", (half, half, 1, 1))[:, main_input]
            _main_rest(src, tv, ms, half, unit_rows[unit - 1], out)
        block += stage_repeats
        width = 2 * half
        before = after[-1]
        channels.append(width)

    last = src.shape("conv5.0.weight")[0]
    out["conv_last.0.weight"] = src.take("conv5.0.weight", (last, width, 1, 1))[:, before]
    bn(src, "conv5.1", "conv_last.1", out)
    num_classes = src.shape("fc.weight")[0]
    out["classifier.weight"] = src.take("fc.weight", (num_classes, last))
    out["classifier.bias"] = src.take("fc.bias", (num_classes,))
    channels.append(last)
    src.check_all_used()
    return ConvertedWeights(as_float32(out), "ShuffleNetV2", tuple(channels), tuple(repeats), num_classes,
                            dict(TORCHVISION_OPTIONS), source="torchvision")


def _main_rest(src: SourceState, tv: str, ms: str, half: int, rows: np.ndarray, out: Dict[str, np.ndarray]) -> None:
    """branch2 after its first conv: BN, depthwise conv, BN (torchvision's order), then the last 1x1 conv
    and BN with their output rows in MindCV's order."""
    bn(src, f"{tv}.branch2.1", f"{ms}.branch_main.1", out)
    out[f"{ms}.branch_main.3.weight"] = src.take(f"{tv}.branch2.3.weight", (half, 1, 3, 3))
    bn(src, f"{tv}.branch2.4", f"{ms}.branch_main.4", out)
    out[f"{ms}.branch_main.5.weight"] = src.take(f"{tv}.branch2.5.weight", (half, half, 1, 1))[rows]
    bn(src, f"{tv}.branch2.6", f"{ms}.branch_main.6", out, rows)
