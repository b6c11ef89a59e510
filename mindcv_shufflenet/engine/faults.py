"""Testing aids: faults a test can inject into a training run through the environment. Unset in normal runs.

- ``MINDCV_SHUFFLENET_TEST_FAIL=RANK:STEP``: that rank fails at that global step (1-based), as a rank meeting
  bad input would, to check what a user sees when one rank of an msrun job dies.
- ``MINDCV_SHUFFLENET_TEST_SLOW_SAVE=SECONDS``: wait between writing a checkpoint's temporary file and
  renaming it, so that a test can kill the run while the file is half done.
- ``MINDCV_SHUFFLENET_TEST_OVERFLOW=RANK:STEP[,STEP...]``: that rank alone reports a non-finite step at those
  global steps (1-based), as an fp16 overflow that saturates on one Ascend card would; ``*:STEP`` means
  every rank. The ranks must still agree to skip the step.
"""

from __future__ import annotations

import os
import time
from typing import FrozenSet

from ..runtime import RunError

FAIL_ENV = "MINDCV_SHUFFLENET_TEST_FAIL"
SLOW_SAVE_ENV = "MINDCV_SHUFFLENET_TEST_SLOW_SAVE"
OVERFLOW_ENV = "MINDCV_SHUFFLENET_TEST_OVERFLOW"


class InjectedFailure(RunError):
    """Raised at the step named by ``MINDCV_SHUFFLENET_TEST_FAIL``."""


def fail_if_asked(rank: int, global_step: int) -> None:
    spec = os.environ.get(FAIL_ENV)
    if spec and spec == f"{rank}:{global_step}":
        raise InjectedFailure(f"injected failure at step {global_step} ({FAIL_ENV}={spec})")


def pause_before_rename() -> None:
    delay = os.environ.get(SLOW_SAVE_ENV)
    if delay:
        time.sleep(float(delay))


def overflow_steps(rank: int) -> FrozenSet[int]:
    """The global steps at which this rank must report overflow (empty in normal runs)."""
    spec = os.environ.get(OVERFLOW_ENV, "").strip()
    if not spec:
        return frozenset()
    who, _, steps = spec.partition(":")
    if who.strip() not in ("*", str(rank)):
        return frozenset()
    try:
        return frozenset(int(s) for s in steps.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"{OVERFLOW_ENV}={spec!r}: expected RANK:STEP[,STEP...]") from None
