"""How many data workers a process runs by default: the cores it may use, shared with the other ranks of the
job on the same node.

``os.cpu_count()`` counts the machine's cores, not the ones a process may run on: a container's cpuset,
``taskset`` and msrun's ``--bind_core`` narrow the set (``os.sched_getaffinity``). Under msrun without
``--bind_core`` every rank of a node may use every core, so each rank takes its share. msrun does not tell a
worker how many ranks its node runs (it exports ``MS_WORKER_NUM``, the whole job's count, and ``DEVICE_ID``,
the local rank): the count is read from the launching msrun's ``--local_worker_num``, else taken as
``MS_WORKER_NUM`` (exact on one node; on several it undercounts the workers each rank could run, never
oversubscribes the cores). A rank whose cores are narrower than its launcher's was bound to them
(``--bind_core``) and keeps them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Set

# Environment variables that msrun (MS_ROLE) or a rank-table launch (RANK_SIZE) set for a worker.
WORKER_COUNT_VARS = ("MS_WORKER_NUM", "RANK_SIZE")
LOCAL_WORKERS_FLAG = "--local_worker_num"
MSRUN_DEFAULT_LOCAL_WORKERS = 8  # msrun's own default for --local_worker_num


def usable_cores(pid: int = 0) -> Set[int]:
    """The cores process ``pid`` (0: this one) may run on; every core where affinity is not available."""
    try:
        return set(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def launcher_local_workers(cmdline: Sequence[str]) -> Optional[int]:
    """msrun's ``--local_worker_num`` in its command line (msrun's default, 8, when not given), or None when
    ``cmdline`` is not an msrun command."""
    head = [Path(arg).name for arg in cmdline[:3]]
    if "msrun" not in head and "mindspore.parallel.cluster.run" not in cmdline[:3]:
        return None
    text = None
    for i, arg in enumerate(cmdline):
        if arg == LOCAL_WORKERS_FLAG and i + 1 < len(cmdline):
            text = cmdline[i + 1]
        elif arg.startswith(LOCAL_WORKERS_FLAG + "="):
            text = arg.split("=", 1)[1]
    try:
        return int(text) if text is not None else MSRUN_DEFAULT_LOCAL_WORKERS
    except ValueError:
        return None


def _parent_cmdline() -> Sequence[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return ()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def local_ranks() -> int:
    """The ranks of this job on this node: 1 outside a launcher; see the module's docstring."""
    if not any(os.environ.get(var) for var in WORKER_COUNT_VARS):
        return 1
    from_launcher = launcher_local_workers(_parent_cmdline())
    if from_launcher:
        return from_launcher
    for var in WORKER_COUNT_VARS:
        try:
            return max(1, int(os.environ.get(var, "")))
        except ValueError:
            continue
    return 1


def share_of_cores(own: Set[int], launcher: Optional[Set[int]], ranks: int) -> int:
    """Cores for one rank's data workers: all of its own when it was bound to cores narrower than its
    launcher's, else its share of them among ``ranks``; at least 1."""
    if launcher is not None and own < launcher:
        return max(1, len(own))
    return max(1, len(own) // max(1, ranks))


def default_workers() -> int:
    """The data workers a process runs when ``num_parallel_workers`` is not given."""
    ranks = local_ranks()
    launcher = usable_cores(os.getppid()) if ranks > 1 else None
    return share_of_cores(usable_cores(), launcher, ranks)


def resolve_workers(num_parallel_workers: Optional[int]) -> int:
    """``num_parallel_workers``, or :func:`default_workers` for None; at most MindSpore's limit (the machine's
    core count, which it checks), at least 1."""
    limit = os.cpu_count() or 1
    wanted = default_workers() if num_parallel_workers is None else int(num_parallel_workers)
    return max(1, min(wanted, limit))
