"""The default data worker count: the cores this process may use (not the machine's), shared with the other
ranks of the node unless msrun bound this rank to cores of its own; msrun's worker count read from its
command line."""

import os
import subprocess
import sys
import textwrap

import pytest

from mindcv_shufflenet.config import ConfigError, load_config
from mindcv_shufflenet.data import workers

PYTHON = sys.executable
AFFINITY = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def _in_subprocess(code, env=None):
    """Run ``code`` in a fresh Python (its affinity and environment are its own) and return its stdout."""
    proc = subprocess.run([PYTHON, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


@pytest.mark.skipif(not AFFINITY, reason="needs two cores and sched_setaffinity")
def test_the_default_follows_a_narrowed_affinity_not_the_cpu_count(images):
    out = _in_subprocess(f"""
        import os
        os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})
        from mindcv_shufflenet.data.datasets import create_train_dataset
        from mindcv_shufflenet.data.workers import default_workers
        data = create_train_dataset({str(images)!r}, batch_size=4, image_size=16, num_samples=8)
        print(os.cpu_count(), default_workers(), data.dataset.num_parallel_workers)
    """)
    cpu_count, default, pipeline = map(int, out)
    assert cpu_count >= 2 and default == 1 and pipeline == 1


@pytest.mark.skipif(not AFFINITY, reason="needs two cores and sched_setaffinity")
def test_ranks_of_a_node_share_its_cores():
    code = "from mindcv_shufflenet.data.workers import default_workers; print(default_workers())"
    cores = len(os.sched_getaffinity(0))
    assert int(_in_subprocess(code)[0]) == cores
    # An msrun worker whose launcher is not msrun here: MS_WORKER_NUM ranks share the cores.
    assert int(_in_subprocess(code, {"MS_WORKER_NUM": "2", "MS_ROLE": "MS_WORKER"})[0]) == max(1, cores // 2)


@pytest.mark.parametrize("own, launcher, ranks, expected", [
    ({0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7}, 2, 4),  # bound by --bind_core: its own cores, all of them
    ({0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7}, 2, 4),  # not bound: half each
    ({0, 1, 2, 3, 4, 5, 6, 7}, None, 8, 1),
    ({0}, None, 8, 1),  # never 0
    ({0, 1, 2}, None, 1, 3),
])
def test_a_rank_bound_to_cores_keeps_them_and_others_share(own, launcher, ranks, expected):
    assert workers.share_of_cores(own, launcher, ranks) == expected


@pytest.mark.parametrize("cmdline, expected", [
    (["/usr/bin/python3", "/venv/bin/msrun", "--worker_num", "4", "--local_worker_num", "2", "train.py"], 2),
    (["/venv/bin/python", "/venv/bin/msrun", "--bind_core=True", "--local_worker_num=3", "train.py"], 3),
    (["/venv/bin/python", "/venv/bin/msrun", "--worker_num", "16", "train.py"], 8),  # msrun's default
    (["python", "-m", "mindspore.parallel.cluster.run", "--local_worker_num", "4", "train.py"], 4),
    (["/usr/bin/python3", "-m", "pytest", "--local_worker_num", "4"], None),  # not msrun
    (["/venv/bin/msrun", "--local_worker_num", "x"], None),
])
def test_msruns_local_worker_count_is_read_from_its_command_line(cmdline, expected):
    assert workers.launcher_local_workers(cmdline) == expected


def test_a_given_worker_count_is_kept_up_to_mindspores_limit():
    assert workers.resolve_workers(1) == 1
    assert workers.resolve_workers(10_000) == os.cpu_count()  # MindSpore refuses more than the core count


def test_num_parallel_workers_defaults_to_the_cores_and_refuses_zero():
    assert load_config(["--model", "shufflenet_v2_x0_5"]).num_parallel_workers is None
    with pytest.raises(ConfigError, match="num_parallel_workers must be >= 1"):
        load_config(["--model", "shufflenet_v2_x0_5", "--num_parallel_workers", "0"])
