"""Two nodes, one CPU worker each, launched with scripts/train_msrun_multinode.sh as the README says: the job
trains one model and node 0 alone writes it; a node 1 worker killed mid-run ends the whole job with a clear
error on node 0; ``--resume auto`` on both nodes continues to the uninterrupted run's weights, and refuses
at once when node 1 cannot see node 0's checkpoints.

Each "node" is a network namespace with its own address (msrun starts the scheduler on the node that owns
``MASTER_ADDR``), the two joined by a veth pair on a private /30 that only these namespaces use. Needs
root and iproute2 (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from mindcv_shufflenet.engine.faults import SLOW_SAVE_ENV
from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

LAUNCHER = "scripts/train_msrun_multinode.sh"
DEMO = "configs/demo/shufflenet_v2_digits_cpu.yaml"
MODEL = "shufflenet_v2_x0_5"
ADDRESSES = ("10.211.83.1", "10.211.83.2")  # node 0, node 1: a /30 seen only inside the two namespaces
PORTS = itertools.count(8118)  # a fresh port per job (each namespace has its own port space)
# 256 digits an epoch over 2 ranks: 4 steps of 32 x 2, 3 epochs, validation every epoch.
TINY = ["--num_samples", "256", "--batch_size", "32", "--epoch_size", "3", "--warmup_epochs", "0",
        "--decay_epochs", "3", "--seed", "3", "--log_interval", "2"]
JOB_TIMEOUT = 300  # seconds: a job that has not ended by then hangs


# ----------------------------------------------------------------------------------------------- namespaces

def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


def _kill_everything_in(namespace: str) -> None:
    """SIGKILL every process in the namespace: only this module's jobs run there."""
    listed = _ip("netns", "pids", namespace)
    for pid in listed.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _processes_in(namespace: str) -> List[int]:
    return [int(pid) for pid in _ip("netns", "pids", namespace).stdout.split()]


def _make_link(tag: str, names: Tuple[str, str]) -> Optional[str]:
    """The veth pair between the namespaces, addresses, links up (lo too); the problem, or None."""
    steps = [("link", "add", f"{tag}v0", "netns", names[0], "type", "veth", "peer", "name", f"{tag}v1", "netns",
              names[1])]
    for k, name in enumerate(names):
        steps += [("-n", name, "addr", "add", f"{ADDRESSES[k]}/30", "dev", f"{tag}v{k}"),
                  ("-n", name, "link", "set", "lo", "up"),
                  ("-n", name, "link", "set", f"{tag}v{k}", "up")]
    for step in steps:
        done = _ip(*step)
        if done.returncode:
            return f"ip {' '.join(step)} failed: {_first_line(done.stderr)}"
    return None


@pytest.fixture(scope="module")
def namespaces():
    """Two network namespaces (node 0, node 1) joined by a veth pair; removed with all their processes."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (Debian: apt-get install iproute2)")
    tag = f"mcs{os.getpid()}"
    names = (f"{tag}n0", f"{tag}n1")
    made: List[str] = []
    try:
        for name in names:
            done = _ip("netns", "add", name)
            if done.returncode:
                pytest.skip(f"ip netns add failed: {_first_line(done.stderr)}")
            made.append(name)
        problem = _make_link(tag, names)
        if problem:
            pytest.skip(problem)
        yield names
    finally:
        for name in made:
            _kill_everything_in(name)
        for name in made:
            _ip("netns", "del", name)  # takes the veth pair with it


@pytest.fixture
def nodes(namespaces):
    """The namespaces, emptied of processes after each test whatever happened."""
    yield namespaces
    for name in namespaces:
        _kill_everything_in(name)


# ----------------------------------------------------------------------------------------------- jobs

class TwoNodeJob:
    """The launcher started on both nodes, as a user would start it on two machines."""

    def __init__(self, namespaces: Sequence[str], out: Path, train_args: Sequence[str],
                 node_args: Sequence[Sequence[str]] = ((), ()), env: Optional[Dict[str, str]] = None):
        self.namespaces, self.out = namespaces, out
        out.mkdir(parents=True, exist_ok=True)
        port = next(PORTS)
        self.procs = []
        for k, name in enumerate(namespaces):
            settings = {"MASTER_ADDR": ADDRESSES[0], "MASTER_PORT": str(port), "NNODES": "2",
                        "NODE_RANK": str(k), "LOG_DIR": str(self.log_dir(k)), **(env or {})}
            cmd = ["ip", "netns", "exec", name, "env", *(f"{key}={value}" for key, value in settings.items()),
                   "bash", LAUNCHER, "1", DEMO, *train_args, *node_args[k]]
            with open(out / f"node{k}.out", "w") as terminal:
                self.procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=terminal, stderr=subprocess.STDOUT))

    def log_dir(self, node: int) -> Path:
        return self.out / f"logs{node}"

    def terminal(self, node: int) -> str:
        """What the user's terminal on that node shows."""
        return (self.out / f"node{node}.out").read_text()

    def wait(self, timeout: float = JOB_TIMEOUT) -> Tuple[int, int]:
        deadline = time.time() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"the two-node job did not end within {timeout:.0f} s:\n{self.terminal(0)[-3000:]}")
        return self.procs[0].returncode, self.procs[1].returncode

    def kill(self) -> None:
        for name in self.namespaces:
            _kill_everything_in(name)
        for proc in self.procs:
            proc.wait(timeout=30)

    def worker_pid(self, node: int) -> Optional[int]:
        """The training process msrun started on that node (its environment names it a worker)."""
        for pid in _processes_in(self.namespaces[node]):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"MS_ROLE=MS_WORKER" in environ and b"train.py" in argv[:3]:
                return pid
        return None


def _wait_for(folder: Path, pattern: str, job: TwoNodeJob, timeout: float = 240) -> Path:
    """The first file matching ``pattern`` in ``folder``, once the running job has written it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(folder.glob(pattern)) if folder.exists() else []
        if found:
            return found[0]
        if any(proc.poll() is not None for proc in job.procs):
            pytest.fail(f"the job ended before {pattern} appeared:\n{job.terminal(0)[-3000:]}")
        time.sleep(0.05)
    job.kill()
    pytest.fail(f"{pattern} did not appear in {folder} within {timeout:.0f} s")


def _different_tensors(expected: Path, got: Path) -> List[str]:
    a, b = read_checkpoint(expected), read_checkpoint(got)
    assert set(a) == set(b)
    return [name for name in a if not np.array_equal(a[name], b[name])]


@pytest.fixture(scope="module")
def uninterrupted(namespaces, images, tmp_path_factory):
    """The 3-epoch job left alone; each node has its own checkpoint folder, as on two machines' disks."""
    out = tmp_path_factory.mktemp("two_nodes")
    args = [*TINY, "--data_dir", str(images)]
    job = TwoNodeJob(namespaces, out, args, node_args=(["--ckpt_save_dir", str(out / "node0_run")],
                                                       ["--ckpt_save_dir", str(out / "node1_run")]))
    codes = job.wait()
    assert codes == (0, 0), job.terminal(0)[-3000:] + job.terminal(1)[-3000:]
    return job


# ----------------------------------------------------------------------------------------------- tests

def test_two_nodes_train_one_model_and_only_node_0_writes_it(uninterrupted):
    job = uninterrupted
    rank0 = (job.log_dir(0) / "worker_0.log").read_text()
    # Global rank = node rank x 1 worker per node + local rank: node 1's worker is rank 1, logged there.
    assert sorted(p.name for p in job.log_dir(0).iterdir()) == ["scheduler.log", "worker_0.log"]
    assert sorted(p.name for p in job.log_dir(1).iterdir()) == ["worker_1.log"]
    assert "256 training images, 4 steps of 32 x 2 device(s) per epoch" in rank0
    # train.py compares every parameter (optimizer state too) across the ranks after each epoch, and stops the
    # run if any differs: this line, and the clean end of both nodes, mean both held one model.
    assert "parameters identical on all 2 ranks after epoch 1" in rank0
    assert "epoch 3/3 done" in rank0 and "val top-1" in rank0 and "finished 3 epoch(s)" in job.terminal(0)
    rank1 = (job.log_dir(1) / "worker_1.log").read_text()
    assert "epoch" not in rank1 and "error" not in rank1  # rank 1 trains silently
    run = job.out / "node0_run"
    assert {f"{MODEL}-2_4.ckpt", f"{MODEL}-3_4.ckpt", f"{MODEL}-last.ckpt", f"{MODEL}-best.ckpt", "train.log",
            "metrics.jsonl", "config.yaml"} <= {p.name for p in run.iterdir()}
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    # Global rank 0 alone writes the run's files; node 1 keeps only its own rank's compiled graph there.
    written = [p.relative_to(job.out / "node1_run") for p in (job.out / "node1_run").rglob("*") if p.is_file()]
    assert written and all(p.parts[0] == "compile_cache" and p.parts[2] == "rank_1" for p in written), written


def test_killing_node_1s_worker_ends_the_job_on_node_0_with_a_clear_error(nodes, images, tmp_path):
    run = tmp_path / "run"
    job = TwoNodeJob(nodes, tmp_path, [*TINY, "--epoch_size", "500", "--decay_epochs", "500", "--val_while_train",
                                       "false", "--data_dir", str(images), "--ckpt_save_dir", str(run)])
    _wait_for(run, f"{MODEL}-1_4.ckpt", job)  # training is under way on both nodes
    victim = job.worker_pid(1)
    assert victim, "no worker process found in node 1's namespace"
    os.kill(victim, signal.SIGKILL)
    killed = time.time()
    codes = job.wait(timeout=120)
    seconds = time.time() - killed
    assert codes[0] != 0 and codes[1] != 0
    assert "error (msrun scheduler): the msrun job lost a process" in job.terminal(0)
    assert "finished" not in job.terminal(0)
    assert not any(_processes_in(name) for name in nodes), "processes left running after the job ended"
    assert seconds < 120, f"node 0 took {seconds:.0f} s to end after node 1's worker died"


def test_resume_auto_on_both_nodes_continues_to_the_uninterrupted_weights(uninterrupted, nodes, images, tmp_path):
    # Both nodes see one checkpoint folder at the same path, as on a shared filesystem.
    run = tmp_path / "run"
    args = [*TINY, "--data_dir", str(images), "--ckpt_save_dir", str(run), "--resume", "auto"]
    # Each save waits 1 s before its final rename, so the job is surely still running when epoch 2's file appears.
    job = TwoNodeJob(nodes, tmp_path / "first", args, env={SLOW_SAVE_ENV: "1"})
    _wait_for(run, f"{MODEL}-2_4.ckpt", job)
    job.kill()  # both machines lose power
    assert not (run / f"{MODEL}-3_4.ckpt").exists()

    job = TwoNodeJob(nodes, tmp_path / "again", args)
    codes = job.wait()
    assert codes == (0, 0), job.terminal(0)[-3000:] + job.terminal(1)[-3000:]
    assert "resumed from" in job.terminal(0) and "epoch 3/3 done" in job.terminal(0)
    assert "epoch 1/3 done" not in job.terminal(0)
    reference = uninterrupted.out / "node0_run"
    for name in (f"{MODEL}-last.ckpt", f"{MODEL}-best.ckpt"):
        assert not _different_tensors(reference / name, run / name), name
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_resume_auto_when_node_1_cannot_see_the_checkpoints_is_refused_at_once(uninterrupted, nodes, tmp_path,
                                                                                images):
    """Two machines with their own disks: node 1's folder is empty until node 0's is copied there."""
    node0_run, node1_run = tmp_path / "node0_run", tmp_path / "node1_run"
    shutil.copytree(uninterrupted.out / "node0_run", node0_run)
    before = {p.name: p.stat().st_mtime_ns for p in node0_run.iterdir() if p.name != "train.log"}
    args = [*TINY, "--data_dir", str(images), "--resume", "auto"]
    node_args = (["--ckpt_save_dir", str(node0_run)], ["--ckpt_save_dir", str(node1_run)])
    job = TwoNodeJob(nodes, tmp_path / "unseen", args, node_args=node_args)
    codes = job.wait(timeout=180)
    assert codes[0] != 0 and codes[1] != 0
    expected = "the ranks do not resume from the same checkpoint (epochs done per rank: [3, 0]"
    assert f"error (rank 0): {expected}" in job.terminal(0)
    assert f"error (rank 1): {expected}" in job.terminal(1)
    assert f"rank 1 read no checkpoint in {node1_run}" in job.terminal(1)
    assert "a copy of node 0's folder" in job.terminal(0)
    after = {p.name: p.stat().st_mtime_ns for p in node0_run.iterdir() if p.name != "train.log"}
    assert after == before  # only the log grew: checkpoints, metrics and config untouched

    shutil.copytree(node0_run, node1_run)  # the fix the message names
    job = TwoNodeJob(nodes, tmp_path / "copied", args, node_args=node_args)
    codes = job.wait()
    assert codes == (0, 0), job.terminal(0)[-3000:] + job.terminal(1)[-3000:]
    assert "nothing to do: 3 epochs done" in job.terminal(0)
