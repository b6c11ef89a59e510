"""Runs with skipped (non-finite) steps: the learning-rate schedule keeps to the steps run, a resume after
them is exact, older checkpoints still resume, and under msrun all ranks skip a step that one rank alone
found to overflow."""


import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet.engine.faults import FAIL_ENV, OVERFLOW_ENV
from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import DEMO

# 320 digits per epoch: 10 steps of 32; a schedule that changes every step, so a shifted LR shows.
TINY = ["--config", DEMO, "--num_samples", "320", "--batch_size", "32", "--epoch_size", "2", "--decay_epochs", "2",
        "--warmup_epochs", "0", "--lr", "0.05", "--log_interval", "5", "--val_while_train", "False",
        "--loss_scale_type", "dynamic", "--loss_scale", "1024", "--seed", "3"]
LAST = "shufflenet_v2_x0_5-last.ckpt"


@pytest.fixture(scope="session")
def uninterrupted(run_cli, images, tmp_path_factory):
    """Two epochs with steps 3 and 4 reported non-finite (as fp16 overflow would be)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), cwd=out,
                   env={OVERFLOW_ENV: "0:3,4"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


@pytest.mark.slow
def test_skipped_steps_are_counted_and_the_schedule_keeps_to_the_steps_run(uninterrupted):
    out, stdout = uninterrupted
    assert "epoch 1/2 done" in stdout and "| 2 step(s) skipped: non-finite gradients" in stdout
    state = read_checkpoint(out / LAST)
    assert int(np.ravel(state["global_step"])[0]) == 20  # update steps run, the skipped two included
    assert int(state["skipped_updates"]) == 2
    assert float(state["scale_sense"]) == 256.0  # halved twice


@pytest.mark.slow
def test_resume_after_skipped_steps_ends_with_the_uninterrupted_weights(run_cli, uninterrupted, images, tmp_path):
    reference, _ = uninterrupted
    out = tmp_path / "run"
    args = [*TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), "--resume", "auto"]
    failed = run_cli("train.py", *args, cwd=tmp_path, env={OVERFLOW_ENV: "0:3,4", FAIL_ENV: "0:15"})  # dies in epoch 2
    assert failed.returncode == 1 and "injected failure at step 15" in failed.stderr
    resumed = run_cli("train.py", *args, cwd=tmp_path, env={OVERFLOW_ENV: "0:3,4"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "1 of 2 epochs done" in resumed.stdout
    expected, got = read_checkpoint(reference / LAST), read_checkpoint(out / LAST)
    different = [name for name in expected if not np.array_equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
def test_a_checkpoint_from_before_the_skip_count_still_resumes(run_cli, uninterrupted, images, tmp_path):
    # Older checkpoints have no skipped_updates, and their global_step counts applied updates only.
    reference, _ = uninterrupted
    out = tmp_path / "run"
    out.mkdir()
    state = read_checkpoint(reference / "shufflenet_v2_x0_5-1_10.ckpt")
    entries = []
    for name, value in state.items():
        if name == "skipped_updates":
            continue
        if name == "global_step":
            value = np.array([8], np.int32)  # 10 steps run, 2 of them skipped
        entries.append({"name": name, "data": ms.Tensor(np.asarray(value))})
    ms.save_checkpoint(entries, str(out / LAST), crc_check=True)
    proc = run_cli("train.py", *TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), "--resume", "auto",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "predates the count of skipped updates: 2 of its 10 update steps were not applied" in proc.stdout
    got = read_checkpoint(out / LAST)
    assert int(np.ravel(got["global_step"])[0]) == 20 and int(got["skipped_updates"]) == 2


@pytest.mark.slow
def test_dynamic_loss_scaling_with_real_overflow_resumes(run_cli, images, tmp_path):
    # The float16 run of the bug report: a scale of 65536 overflows in the first steps on the CPU.
    out = tmp_path / "run"
    args = [*TINY, "--data_dir", str(images), "--ckpt_save_dir", str(out), "--amp_level", "O3",
            "--loss_scale", "65536", "--image_resize", "32"]
    first = run_cli("train.py", *args, "--epoch_size", "1", "--decay_epochs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "step(s) skipped: non-finite gradients" in first.stdout
    resumed = run_cli("train.py", *args, "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "epoch 2/2 done" in resumed.stdout


@pytest.mark.slow
def test_msrun_ranks_all_skip_a_step_that_overflowed_on_one_rank(run_cli, images, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train.py", *TINY, "--epoch_size", "1", "--decay_epochs", "1", "--data_dir", images,
                   "--ckpt_save_dir", out, "--distribute", "True", cwd=tmp_path, timeout=400, env={OVERFLOW_ENV: "1:3"},
                   msrun_workers=2, log_dir=tmp_path / "logs")
    rank0 = (tmp_path / "logs" / "worker_0.log").read_text()
    rank1 = (tmp_path / "logs" / "worker_1.log").read_text()
    assert proc.returncode == 0, rank0[-2000:] + rank1[-2000:]
    # Rank 0 saw no overflow itself, yet skipped the step with rank 1; the end-of-epoch check compares every
    # parameter of the step (weights, moments, loss scale, counters) across the ranks.
    assert "parameters identical on all 2 ranks after epoch 1" in rank0
    assert "| 1 step(s) skipped: non-finite gradients" in rank0
    state = read_checkpoint(out / LAST)
    assert float(state["scale_sense"]) == 512.0 and int(state["skipped_updates"]) == 1
