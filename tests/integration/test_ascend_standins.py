"""train.py's Ascend path end to end on the CPU, with the NPU stand-ins of :mod:`mindcv_shufflenet.npu`: the sunk
loop (chunks, epochs, checkpoints), SIGKILL and resume, msrun, no deprecated MindSpore call, and the preflight."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet import npu
from tests.helpers import ROOT, free_port

PYTHON = sys.executable
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")
MODEL = "shufflenet_v2_x0_5"

# --------------------------------------------------------------------------------------------- train.py, sunk

def _digits(root: Path) -> Path:
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    data = root / "digits"
    if not (data / "digits.json").exists():
        write_digits_imagefolder(data)
    return data


# 320 images (10 batches of 32), no random augmentation: each epoch's batches are a function of (seed, epoch,
# rank) alone, so a sunk run can be compared with a fed one and a resumed one with one left alone.
SUNK_ARGS = ["--config", DEMO, "--num_samples", "320", "--batch_size", "32", "--epoch_size", "3", "--warmup_epochs",
             "0", "--decay_epochs", "3", "--log_interval", "4", "--scale", "1.0,1.0", "--ratio", "1.0,1.0",
             "--val_while_train", "false", "--ema", "true", "--ema_decay", "0.9", "--keep_checkpoint_max", "5",
             "--plot", "false"]


def _train(out: Path, data: Path, *extra: str, chip: str = "910A", check: bool = True, **popen):
    env = {**os.environ, npu.STANDIN_ENV: chip} if chip else {k: v for k, v in os.environ.items()
                                                             if k != npu.STANDIN_ENV}
    args = [PYTHON, str(ROOT / "train.py"), *SUNK_ARGS, "--data_dir", str(data), "--ckpt_save_dir", str(out), *extra]
    if popen:
        return subprocess.Popen(args, env=env, cwd=out.parent, **popen)
    proc = subprocess.run(args, env=env, cwd=out.parent, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _last(out: Path):
    from mindcv_shufflenet.models.weights import read_checkpoint

    return read_checkpoint(out / f"{MODEL}-last.ckpt")


def _assert_same_state(got, expected, context=""):
    assert set(got) == set(expected), context
    different = [name for name in expected if not np.array_equal(got[name], expected[name])]
    assert not different, f"{context}: {len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
def test_a_sunk_run_with_accumulation_trains_on_each_epochs_own_batches(tmp_path):
    # 10 batches an epoch, windows of 3: 9 steps an epoch, the 10th batch unused in every epoch alike. The sunk
    # run must end with the fed run's weights (the fed run builds each epoch's data on its own).
    data = _digits(tmp_path)
    accumulate = ["--gradient_accumulation_steps", "3", "--loss_scale_type", "dynamic", "--loss_scale", "256"]
    sunk = _train(tmp_path / "sunk", data, "--dataset_sink_mode", "true", *accumulate)
    _train(tmp_path / "fed", data, "--dataset_sink_mode", "false", *accumulate)
    assert "the Ascend path on the CPU" in sunk.stdout
    logged = [line.split(" |")[0] for line in sunk.stdout.splitlines() if line.startswith("epoch 1/3 step")]
    assert logged == ["epoch 1/3 step 4/9", "epoch 1/3 step 8/9", "epoch 1/3 step 9/9"]  # statistics per chunk
    assert "first step (graph compile and run)" in sunk.stdout
    for epoch in (1, 2, 3):  # a checkpoint at each epoch's end, on an update boundary
        assert (tmp_path / "sunk" / f"{MODEL}-{epoch}_9.ckpt").is_file()
    state = _last(tmp_path / "sunk")
    assert int(state["global_step"][0]) == 9  # 3 updates an epoch
    _assert_same_state(state, _last(tmp_path / "fed"), "sunk vs fed")


@pytest.mark.slow
@pytest.mark.parametrize("accumulation", [1, 3])
def test_a_sunk_run_killed_and_resumed_ends_with_the_uninterrupted_weights(tmp_path, accumulation):
    data = _digits(tmp_path)
    extra = ["--dataset_sink_mode", "true", "--gradient_accumulation_steps", str(accumulation)]
    _train(tmp_path / "whole", data, *extra)
    out = tmp_path / "killed"
    out.mkdir()
    proc = _train(out, data, *extra, "--resume", "auto", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time()
    try:
        while not list(out.glob(f"{MODEL}-1_*.ckpt")):  # killed once epoch 1 is saved, inside epoch 2
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() - start < 300, "no checkpoint after 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / f"{MODEL}-3_{10 // accumulation * accumulation}.ckpt").exists()
    resumed = _train(out, data, *extra, "--resume", "auto")
    assert "resumed from" in resumed.stdout
    _assert_same_state(_last(out), _last(tmp_path / "whole"), f"accumulation {accumulation}")


@pytest.mark.slow
def test_msrun_with_two_cpu_workers_trains_sunk(tmp_path):
    data = _digits(tmp_path)
    msrun = shutil.which("msrun", path=str(Path(PYTHON).parent))
    env = {**os.environ, npu.STANDIN_ENV: "910A", "GLOG_v": "2",
           "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [msrun, "--worker_num", "2", "--local_worker_num", "2", "--master_addr", "127.0.0.1", "--master_port",
           str(free_port()), "--log_dir", str(tmp_path / "logs"), "--join", "True", "python", str(ROOT / "train.py"),
           *SUNK_ARGS, "--epoch_size", "2", "--decay_epochs", "2", "--data_dir", str(data), "--ckpt_save_dir",
           str(tmp_path / "run"), "--distribute", "True", "--dataset_sink_mode", "true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    rank0 = (tmp_path / "logs" / "worker_0.log").read_text()
    assert proc.returncode == 0, rank0[-3000:]
    assert "parameters identical on all 2 ranks after epoch 1" in rank0
    assert "epoch 1/2 step 4/5" in rank0  # 160 images a rank: 5 sunk steps, read every 4
    assert (tmp_path / "run" / f"{MODEL}-2_5.ckpt").is_file()
    for rank in (0, 1):  # MindSpore's warnings shown (GLOG_v=2): none about a deprecated call of ours
        log = (tmp_path / "logs" / f"worker_{rank}.log").read_text()
        assert "deprecated" not in log.lower(), [line for line in log.splitlines() if "deprecated" in line.lower()]


@pytest.mark.slow
@pytest.mark.parametrize("sink", [False, True])
def test_a_run_calls_nothing_mindspore_deprecates(tmp_path, sink):
    # The thread count, the jit level and validation all go through MindSpore 2.10's documented calls.
    data = _digits(tmp_path)
    env = {**os.environ, "GLOG_v": "2", **({npu.STANDIN_ENV: "910A"} if sink else {})}
    proc = subprocess.run([PYTHON, str(ROOT / "train.py"), "--config", DEMO, "--data_dir", str(data),
                           "--ckpt_save_dir", str(tmp_path / "run"), "--num_samples", "64", "--batch_size", "32",
                           "--epoch_size", "1", "--num_threads", "2", "--jit_level", "O1", "--val_amp_level", "O2",
                           "--dataset_sink_mode", str(sink).lower(), "--plot", "false"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = proc.stdout + proc.stderr
    assert "val top-1" in seen, seen[-3000:]
    assert "deprecated" not in seen.lower(), [line for line in seen.splitlines() if "deprecated" in line.lower()]


# --------------------------------------------------------------------------------------------- preflight

PREFLIGHT = str(ROOT / "scripts" / "ascend_preflight.sh")
V1_RECIPE = str(ROOT / "configs" / "shufflenetv1" / "shufflenet_v1_g3_05_ascend.yaml")


def test_the_preflight_refuses_a_host_without_the_ascend_toolkit_in_one_line(tmp_path):
    from mindcv_shufflenet import runtime

    if runtime.device_unavailable_reason("Ascend") is None:
        pytest.skip("this machine has the Ascend toolkit")
    proc = subprocess.run(["bash", PREFLIGHT, V1_RECIPE, "--out", str(tmp_path / "p.json")], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: preflight cannot run here: the Ascend toolkit is not "
                                                   "usable (cannot load "), proc.stderr
    assert "--device CPU" in lines[0] and not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_the_preflights_cpu_mode_runs_every_stage_a_cpu_can(tmp_path):
    out = tmp_path / "preflight.json"
    proc = subprocess.run(["bash", PREFLIGHT, V1_RECIPE, "--device", "CPU", "--out", str(out)], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stages = [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("[")]
    assert stages == ["[1/3] toolkit and devices", "[2/3] dry run", "[3/3] 3 sunk steps"]
    report = json.loads(out.read_text())
    measured = report["measured"]
    assert report["standin_chip"] == "910A" and measured["sunk"] is True
    assert measured["model"] == "shufflenet_v1_g3_05" and measured["batch_per_device"] == 4
    assert measured["compile_seconds"] > 0 and measured["ms_per_step"] > 0
    assert measured["img_per_second"] == pytest.approx(4 * 1000 / measured["ms_per_step"], rel=0.01, abs=0.05)
    assert report["published"]["compile_seconds"] == 169.0  # MindCV's figure for this model, beside ours
