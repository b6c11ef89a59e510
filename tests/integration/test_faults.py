"""Faults lose nothing, in whole runs of train.py: a run killed at random moments (also while a checkpoint is half
written) ends with the uninterrupted run's weights; a full disk is a clear error that leaves the earlier
checkpoints intact; a diverging run saves only finite weights; a failing msrun rank ends the job with its error
visible (in process: unit/test_faults.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest

from mindcv_shufflenet.engine.faults import FAIL_ENV, SLOW_SAVE_ENV
from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import DEMO, start_cli

MODEL = "shufflenet_v2_x0_5"


# --------------------------------------------------------------------------------------------- non-finite steps


@pytest.mark.slow
def test_a_diverging_run_saves_only_finite_weights(run_cli, tmp_path):
    """lr 1e30: the first update explodes the weights; every later step is non-finite and skipped. Before
    the BatchNorm statistics were restored, this run crashed saving NaN statistics."""
    out = tmp_path / "run"
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", _digits(tmp_path), "--num_samples", "128",
                   "--epoch_size", "2", "--warmup_epochs", "0", "--decay_epochs", "2", "--lr", "1e30",
                   "--ckpt_save_dir", out, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step(s) skipped: non-finite gradients" in proc.stdout
    saved = sorted(out.glob("*.ckpt"))
    assert {p.name for p in saved} >= {f"{MODEL}-last.ckpt", f"{MODEL}-best.ckpt", f"{MODEL}-2_2.ckpt"}
    for path in saved:
        bad = [n for n, v in read_checkpoint(path).items() if not np.isfinite(v).all()]
        assert not bad, f"{path.name}: {bad[:3]}"


@pytest.mark.slow
def test_too_many_bad_steps_stop_the_run_with_one_line(run_cli, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", _digits(tmp_path), "--num_samples", "256",
                   "--epoch_size", "2", "--warmup_epochs", "0", "--decay_epochs", "2", "--lr", "1e30",
                   "--max_bad_steps", "2", "--val_while_train", "false", "--ckpt_save_dir", out, cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 consecutive steps with non-finite loss or "
                                                           "gradients (epoch 1, step 3")
    assert not list(out.glob("*.ckpt"))


# --------------------------------------------------------------------------------------------- disk full


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_a_clear_error_and_resume_continues(run_cli, tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("cannot mount a small tmpfs here (needs root); the monkeypatched test covers the save itself")
    try:
        out = disk / "run"
        args = ["--config", DEMO, "--data_dir", str(_digits(tmp_path)), "--num_samples", "128", "--epoch_size", "3",
                "--warmup_epochs", "0", "--decay_epochs", "3", "--val_while_train", "false", "--ckpt_save_dir",
                str(out), "--resume", "auto",
                # the compiled step (~2 MB) is kept off the small disk, whose budget is the checkpoints'
                "--compile_cache_dir", str(tmp_path / "compile_cache")]
        proc = run_cli("train.py", *args, cwd=tmp_path, timeout=300)
        # One training state is ~2.9 MB: epoch 1 fits in 4 MB, epoch 2 does not.
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last == (f"error: cannot write checkpoint {out}/{MODEL}-2_2.ckpt: No space left on device. Free space "
                        f"in {out} (or choose another --ckpt_save_dir) and resume with --resume auto; the "
                        f"checkpoints saved before are intact")
        assert read_checkpoint(out / f"{MODEL}-last.ckpt")["epoch"] == 1
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary files left
        moved = tmp_path / "bigger"
        shutil.copytree(out, moved)  # the user frees space: here, by moving the run to a bigger disk
        args[args.index(str(out))] = str(moved)
        proc = run_cli("train.py", *args, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "resumed from" in proc.stdout and "epoch 3/3 done" in proc.stdout
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --------------------------------------------------------------------------------------------- SIGKILL

def _digits(tmp_path: Path) -> Path:
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    root = tmp_path / "digits"
    if not (root / "digits.json").exists():
        write_digits_imagefolder(root)
    return root


def _messy_digits(root: Path) -> Path:
    """The digits, plus files the pipeline must skip (listing) or replace (decoding) in the same way after
    every resume."""
    data = _digits(root)
    (data / "train" / "3" / "empty.png").write_bytes(b"")
    (data / "train" / "3" / "notes.txt").write_text("not an image")
    (data / "train" / "5" / "cut.png").write_bytes((data / "train" / "5" / sorted(
        os.listdir(data / "train" / "5"))[0]).read_bytes()[:60])
    body = b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(300) + b"\xff\xd9"
    (data / "train" / "7" / "zz_body.jpg").write_bytes(body)
    return data


# 320 images a epoch (10 steps of 32), 3 epochs, EMA, augmentation, validation: every kind of state.
FAULT_ARGS = ["--config", DEMO, "--num_samples", "320", "--batch_size", "32", "--epoch_size", "3",
              "--decay_epochs", "2", "--warmup_epochs", "1", "--lr", "0.02", "--log_interval", "5", "--ema", "true",
              "--ema_decay", "0.9", "--color_jitter", "0.2", "--seed", "5", "--keep_checkpoint_max", "2"]


def _run_dir_is_consistent(out: Path) -> List[str]:
    """Problems with the files under real names (complete checkpoints, readable index), [] if none."""
    problems = []
    for path in out.glob("*.ckpt"):
        if path.name.startswith("."):
            continue
        try:
            read_checkpoint(path)
        except ValueError as err:
            problems.append(f"{path.name}: {err}")
    if (out / "checkpoints.json").exists():
        try:
            json.loads((out / "checkpoints.json").read_text())
        except ValueError as err:
            problems.append(f"checkpoints.json: {err}")
    return problems


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_ends_with_the_uninterrupted_weights(run_cli, tmp_path):
    data = _messy_digits(tmp_path)
    reference = tmp_path / "reference"
    start = time.time()
    proc = run_cli("train.py", *FAULT_ARGS, "--data_dir", data, "--ckpt_save_dir", reference, cwd=tmp_path)
    reference_seconds = time.time() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: skipping 3 file(s)" in proc.stdout

    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 100000))
    rng = random.Random(seed)
    out = tmp_path / "killed"
    args = [*FAULT_ARGS, "--data_dir", str(data), "--ckpt_save_dir", str(out), "--resume", "auto"]
    kills, log = 0, []
    for attempt in range(8):
        # Saving takes an extra 0.4 s between writing the temporary file and renaming it, so kills land mid-save.
        proc = start_cli("train.py", *args, cwd=tmp_path, env={SLOW_SAVE_ENV: "0.4"})
        mid_save = attempt % 2 == 0
        # Within the first 45% of an uninterrupted run's time: start-up (imports, graph compile) outweighs the
        # epochs here, so even a run resumed for its last epoch lives longer, on fast hosts and slow ones alike.
        delay = rng.uniform(0.05, 0.45) * reference_seconds
        start = time.time()
        while proc.poll() is None:
            partial = list(out.glob(".*.partial*")) if out.exists() else []
            if (mid_save and partial and rng.random() < 0.5) or (not mid_save and time.time() - start > delay):
                proc.send_signal(signal.SIGKILL)
                kills += 1
                log.append(f"kill {kills}: {'mid-save ' + partial[0].name if mid_save else f'after {delay:.1f} s'}")
                break
            if time.time() - start > 600:
                proc.kill()
                pytest.fail("a run took more than 10 minutes")
            time.sleep(0.01)
        proc.wait()
        problems = _run_dir_is_consistent(out) if out.exists() else []
        assert not problems, f"seed {seed}, {log}: {problems}"
        if proc.returncode == 0:
            break
    else:
        proc = run_cli("train.py", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert kills >= 2, f"seed {seed}: the run finished before it was killed twice ({log})"

    expected, got = read_checkpoint(reference / f"{MODEL}-last.ckpt"), read_checkpoint(out / f"{MODEL}-last.ckpt")
    assert set(got) == set(expected)
    different = [name for name in expected if not np.array_equal(expected[name], got[name])]
    assert not different, f"seed {seed}, {log}: {len(different)} tensors differ, e.g. {different[:3]}"
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3], f"seed {seed}, {log}"
    np.testing.assert_array_equal(read_checkpoint(out / f"{MODEL}-best.ckpt")["classifier.weight"],
                                  read_checkpoint(reference / f"{MODEL}-best.ckpt")["classifier.weight"])


# --------------------------------------------------------------------------------------------- msrun

@pytest.mark.slow
def test_a_failing_msrun_rank_ends_the_job_and_its_error_reaches_the_terminal(run_cli, tmp_path):
    start = time.time()
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", _digits(tmp_path), "--num_samples", "256",
                   "--epoch_size", "2", "--warmup_epochs", "0", "--decay_epochs", "2", "--val_while_train", "false",
                   "--ckpt_save_dir", tmp_path / "run", "--distribute", "True", cwd=tmp_path, timeout=400,
                   env={FAIL_ENV: "1:3"}, msrun_workers=2, log_dir=tmp_path / "logs")
    seconds = time.time() - start
    assert proc.returncode != 0
    seen = proc.stdout + proc.stderr  # what the user's terminal shows
    assert f"error (rank 1): injected failure at step 3 ({FAIL_ENV}=1:3)" in seen
    assert "error (msrun scheduler): the msrun job lost a process" in seen
    assert "worker_<rank>.log in msrun's --log_dir" in seen
    rank1 = (tmp_path / "logs" / "worker_1.log").read_text()
    assert "error (rank 1): injected failure" in rank1 and "Traceback" not in rank1
    assert seconds < 300, f"the job took {seconds:.0f} s to end after a rank failed"
