"""Every shell script of the repository parses (``bash -n``) and, where shellcheck is installed, has no
shellcheck warning; the multi-node launcher refuses incomplete settings with one line before doing anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

import pytest

from tests.helpers import ROOT

MULTINODE = "scripts/train_msrun_multinode.sh"


def _is_shell_script(relative: str) -> bool:
    if relative.endswith(".sh"):
        return True
    try:
        with open(ROOT / relative, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    words = first[2:].split() if first.startswith(b"#!") else []
    if words and words[0].endswith(b"/env"):
        words = words[1:]
    return bool(words) and words[0].split(b"/")[-1] in (b"bash", b"sh")


def shell_scripts() -> List[str]:
    """The tracked ``*.sh`` files and the tracked files that start with a bash or sh shebang (.ci/run)."""
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return []
    if listed.returncode:
        return []
    return sorted(name for name in listed.stdout.splitlines() if _is_shell_script(name))


SCRIPTS = shell_scripts()


def test_the_shell_script_list_holds_the_launchers_and_ci():
    if not SCRIPTS:
        pytest.skip("not a git checkout: the scripts are listed with git ls-files")
    assert {MULTINODE, "scripts/train_msrun.sh", "scripts/env.sh", ".ci/run"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_shell_script_parses(script):
    checked = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_shell_script_has_no_shellcheck_warning(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck; .ci/run installs it)")
    checked = subprocess.run(["shellcheck", "-S", "warning", script], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _launch(settings, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "NNODES", "NODE_RANK")}
    return subprocess.run(["bash", MULTINODE, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**env, **settings})


def test_the_multinode_launcher_without_its_settings_says_which_to_set():
    run = _launch({"NNODES": "2"}, "8", "configs/x.yaml", "--data_dir", "/data")
    assert run.returncode == 2
    assert run.stderr.startswith("error: set MASTER_ADDR (the address of node 0), NNODES and NODE_RANK")
    assert "MASTER_ADDR=10.0.0.1 NNODES=2 NODE_RANK=0 bash scripts/train_msrun_multinode.sh 8 configs/x.yaml" \
        in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("per_node, nnodes, node_rank, expected", [
    ("8", "2", "2", "error: NODE_RANK must be one of 0..1 (NNODES=2), got '2'"),
    ("8", "2", "x", "error: NODE_RANK must be one of 0..1 (NNODES=2), got 'x'"),
    ("8", "0", "0", "error: NNODES must be a whole number >= 1, got '0'"),
    ("eight", "2", "0", "error: DEVICES_PER_NODE must be a whole number >= 1, got 'eight'"),
])
def test_the_multinode_launcher_refuses_bad_numbers_with_one_line(per_node, nnodes, node_rank, expected):
    run = _launch({"MASTER_ADDR": "10.0.0.1", "NNODES": nnodes, "NODE_RANK": node_rank}, per_node, "c.yaml")
    assert run.returncode == 2
    assert run.stderr.strip() == expected


def test_the_multinode_launcher_without_arguments_prints_its_usage():
    run = _launch({"MASTER_ADDR": "10.0.0.1", "NNODES": "2", "NODE_RANK": "0"}, "8")
    assert run.returncode == 2
    assert run.stderr.strip() == f"usage: {MULTINODE} DEVICES_PER_NODE CONFIG.yaml [--key value ...]"
