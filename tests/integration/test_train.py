"""train.py end to end on the CPU, run as a user runs it: files written, loss falls, resume after SIGKILL
equals the uninterrupted run, msrun data parallel, validate.py on the result, and clear refusals."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import DEMO, start_cli

# The demo recipe cut down: 640 of the digits per epoch (20 steps of 32), 3 epochs, EMA on.
TINY = ["--config", DEMO, "--num_samples", "640", "--batch_size", "32", "--epoch_size", "3", "--decay_epochs", "2",
        "--lr", "0.02", "--log_interval", "4", "--ema", "true", "--ema_decay", "0.9", "--hflip", "0.5",
        "--color_jitter", "0.2", "--seed", "7"]


@pytest.fixture(scope="session")
def reference_run(run_cli, images, tmp_path_factory):
    """The uninterrupted 3-epoch run that the other tests compare against."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def last_state(run_dir: Path):
    return read_checkpoint(run_dir / "shufflenet_v2_x0_5-last.ckpt")


@pytest.mark.slow
def test_training_writes_checkpoints_config_metrics_and_plot(reference_run):
    out, stdout = reference_run
    for name in ("config.yaml", "metrics.jsonl", "train.log", "curves.png", "classes.txt", "checkpoints.json",
                 "shufflenet_v2_x0_5-last.ckpt", "shufflenet_v2_x0_5-best.ckpt", "shufflenet_v2_x0_5-3_20.ckpt"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*partial*"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert all(0 <= r["val_top1"] <= 100 for r in records)
    assert (out / "classes.txt").read_text().split() == [str(d) for d in range(10)]
    # What the user sees: speed, data wait, compile time once, per-epoch validation.
    assert stdout.count("first step (graph compile and run)") == 1
    assert "ms/step" in stdout and "img/s" in stdout and "data wait" in stdout and "lr " in stdout
    assert "epoch 3/3 done" in stdout and "val top-1" in stdout
    assert (out / "train.log").read_text().strip().splitlines()[-1] == stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_checkpoints_record_the_model_classes_and_preprocessing(reference_run):
    from mindcv_shufflenet.models.weights import read_checkpoint_with_meta

    out, _ = reference_run
    for name in ("shufflenet_v2_x0_5-best.ckpt", "shufflenet_v2_x0_5-last.ckpt"):
        _, meta = read_checkpoint_with_meta(out / name)
        assert meta["model"] == "shufflenet_v2_x0_5" and meta["class_names"] == [str(d) for d in range(10)]
        assert meta["preprocessing"]["input_size"] == 32 and meta["preprocessing"]["crop_pct"] == 1.0


@pytest.mark.slow
def test_best_checkpoint_validates_to_its_recorded_accuracy(run_cli, reference_run, images, tmp_path):
    out, _ = reference_run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(r["val_top1"] for r in records)
    result = tmp_path / "val.json"
    proc = run_cli("validate.py", "--config", out / "config.yaml", "--ckpt_path", out / "shufflenet_v2_x0_5-best.ckpt",
                   "--json", result, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "top-1" in proc.stdout
    assert json.loads(result.read_text())["top1"] == pytest.approx(best, abs=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(run_cli, reference_run, images, tmp_path):
    reference, _ = reference_run
    out = tmp_path / "run"
    args = [*TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), "--resume", "auto"]
    proc = start_cli("train.py", *args, cwd=tmp_path)
    deadline = time.time() + 240
    first_epoch = out / "shufflenet_v2_x0_5-1_20.ckpt"
    while not first_epoch.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert done and done[-1] < 3, "the run finished before it could be killed"

    resumed = run_cli("train.py", *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    expected, got = last_state(reference), last_state(out)
    assert set(got) == set(expected)
    different = [name for name in expected if not np.array_equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert any(name.startswith("ema.") for name in got) and "global_step" in got
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


@pytest.mark.slow
def test_finished_run_resumed_again_trains_nothing(run_cli, reference_run, images, tmp_path):
    reference, _ = reference_run
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(copy), "--resume", "auto",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nothing to do: 3 epochs done" in proc.stdout
    assert "first step" not in proc.stdout


@pytest.mark.slow
def test_damaged_last_checkpoint_resumes_from_the_newest_intact_epoch(run_cli, reference_run, images, tmp_path):
    reference, _ = reference_run
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    last, newest = copy / "shufflenet_v2_x0_5-last.ckpt", copy / "shufflenet_v2_x0_5-3_20.ckpt"
    last.unlink()
    os.link(newest, last)  # as training leaves them: one file under two names
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x40
    newest.write_bytes(bytes(data))  # in place: last.ckpt is damaged with it
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(copy), "--resume", "auto",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    intact = copy / "shufflenet_v2_x0_5-2_20.ckpt"
    assert f"warning: {last} is damaged (its contents do not match the CRC-32 saved with it" in proc.stdout
    assert (f"resuming from {intact}, the newest intact checkpoint; also damaged: shufflenet_v2_x0_5-3_20.ckpt"
            in proc.stdout)
    assert f"resumed from {intact}: 2 of 3 epochs done" in proc.stdout
    assert "permission" not in (proc.stdout + proc.stderr).lower()
    expected, got = last_state(reference), last_state(copy)
    different = [name for name in expected if not np.array_equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    epochs = [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


@pytest.mark.slow
def test_msrun_two_workers_train_one_model_on_disjoint_halves(run_cli, images, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train.py", *TINY, "--epoch_size", "2", "--decay_epochs", "1", "--data_dir", images,
                   "--ckpt_save_dir", out, "--distribute", "True", cwd=tmp_path, timeout=400, msrun_workers=2,
                   log_dir=tmp_path / "logs")
    rank0 = (tmp_path / "logs" / "worker_0.log").read_text()
    rank1 = (tmp_path / "logs" / "worker_1.log").read_text()
    assert proc.returncode == 0, rank0[-2000:] + rank1[-2000:]
    # 640 images over 2 ranks x batch 32: 10 steps per epoch each (20 alone), every rank on its own half.
    assert "640 training images, 10 steps of 32 x 2 device(s)" in rank0
    assert "parameters identical on all 2 ranks" in rank0
    assert "epoch 2/2 done" in rank0 and "val top-1" in rank0
    assert "epoch 1/2" not in rank1 and "note:" not in rank1  # only rank 0 logs
    log = (out / "train.log").read_text()
    assert log.count("epoch 1/2 done") == 1  # only rank 0 writes
    assert (out / "shufflenet_v2_x0_5-2_10.ckpt").is_file()


def test_distribute_without_msrun_is_a_clear_error(run_cli, images, tmp_path):
    env = {"MS_WORKER_NUM": None, "MS_SCHED_HOST": None, "RANK_TABLE_FILE": None}  # not started by msrun
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(tmp_path), "--distribute",
                   "true", cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: distribute: true needs one process per device, started by msrun")
    assert "Traceback" not in proc.stderr


def test_unwritable_checkpoint_folder_is_refused_before_training(run_cli, images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(blocker / "run"), cwd=tmp_path,
                   timeout=120)
    assert proc.returncode == 2
    assert "is not writable" in proc.stderr and "--ckpt_save_dir" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_error_exits_2_with_one_line(run_cli, tmp_path):
    proc = run_cli("train.py", "--model", "shufflenet_v2_x0_5", "--lr", "-1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: lr must be > 0, got -1.0"
