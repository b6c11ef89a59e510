"""The code only an Ascend NPU runs, compiled and run here: in graph mode on the CPU, with the NPU-only
operations replaced by the stand-ins of :mod:`mindcv_shufflenet.npu` (``MINDCV_SHUFFLENET_ASCEND_STANDIN``).

In-process tests build the train step with every Ascend-only branch on (float-status clear and read, sinking,
step statistics, BatchNorm backup, accumulation with a dynamic scale, EMA, clipping); the subprocess tests run
train.py's sunk loop end to end: chunks, epochs, checkpoints, SIGKILL and resume, and msrun."""

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import npu
from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.engine.train_step import StepStatsReader, TrainStep

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")
MODEL = "shufflenet_v2_x0_5"


@pytest.fixture
def standin(monkeypatch):
    """Turn the stand-ins on (as the given chip) for this test."""
    def use(chip="910A"):
        monkeypatch.setenv(npu.STANDIN_ENV, chip)
    use()
    return use


# --------------------------------------------------------------------------------------------- the switch

def test_the_standin_switch_knows_its_chips(monkeypatch):
    monkeypatch.delenv(npu.STANDIN_ENV, raising=False)
    assert npu.standin_chip() is None and not npu.ascend_path("CPU") and npu.ascend_path("Ascend")
    assert npu.float_status() is None  # a CPU run without the switch never builds the NPU branch
    for chip, register in [("910A", True), ("910B", False), ("910B-saturation", True)]:
        monkeypatch.setenv(npu.STANDIN_ENV, chip)
        assert npu.ascend_path("CPU") and npu.uses_float_status_register() is register
        assert (npu.float_status() is not None) is register
    monkeypatch.setenv(npu.STANDIN_ENV, "910C")
    with pytest.raises(ValueError, match=r"^MINDCV_SHUFFLENET_ASCEND_STANDIN='910C' is not a chip .*910A"):
        npu.standin_chip()


def test_host_data_sink_has_data_sinks_signature_and_loops_the_dataset():
    def parameters(function):
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert parameters(npu.host_data_sink) == parameters(ms.data_sink) == parameters(npu.data_sink)
    data = ds.NumpySlicesDataset({"x": np.arange(5, dtype=np.float32)}, shuffle=False)
    seen = []

    def record(x):
        seen.append(float(x.asnumpy()))
        return x

    sink = npu.host_data_sink(record, data, sink_size=2)
    assert float(sink().asnumpy()) == 1.0  # the last of its sink_size batches
    sink(), sink()
    assert seen == [0, 1, 2, 3, 4, 0]  # past the end the queue starts the dataset again
    with pytest.raises(ValueError, match="sink_size"):
        npu.host_data_sink(record, data, sink_size=0)


# --------------------------------------------------------------------------------------------- the step

class TinyNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(6, 5)
        self.bn = nn.BatchNorm1d(5)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(5, 3)

    def construct(self, x):
        return self.fc2(self.relu(self.bn(self.fc1(x))))


def _tiny_step(**kwargs):
    ms.set_seed(0)
    net = TinyNet()
    step = TrainStep(net, create_loss("CE"), nn.Momentum(net.trainable_params(), 0.1, 0.9), **kwargs)
    step.set_train(True)
    return net, step


def _weights(net):
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


@pytest.mark.parametrize("chip", ["910A", "910B-saturation"])
def test_the_float_status_branch_compiles_in_graph_mode_and_skips_an_overflowing_step(standin, graph_mode, chip):
    # The branch that stopped every run on 910A at its first step (an import inside construct).
    standin(chip)
    net, step = _tiny_step(loss_scale=1024.0, dynamic_loss_scale=True)
    assert step.float_status is not None
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.normal(size=(8, 6)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 3, 8).astype(np.int32))
    _, finite, _ = step(x, y)
    assert bool(finite.asnumpy())
    before = _weights(net)
    _, finite, _ = step(ms.Tensor(np.full((8, 6), np.inf, np.float32)), y)
    assert not bool(finite.asnumpy())
    assert float(step.scale_sense.asnumpy()) == 512.0
    for name, value in _weights(net).items():  # weights and BatchNorm statistics as they were
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    _, finite, _ = step(x, y)  # the register was cleared: the next clean step is applied
    assert bool(finite.asnumpy()) and int(step.skipped_updates.asnumpy()) == 1


def _ascend_step(model: str):
    """``model``'s step with every Ascend-only branch on, as small as the network allows."""
    from mindcv_shufflenet import create_model

    ms.set_seed(0)
    net = create_model(model, num_classes=4)
    step = TrainStep(net, create_loss("CE", label_smoothing=0.1), nn.Momentum(net.trainable_params(), 0.01, 0.9),
                     loss_scale=64.0, dynamic_loss_scale=True, clip_grad_norm=5.0, ema_decay=0.9,
                     accumulation_steps=2)
    step.set_train(True)
    return net, step


def _batches():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(6, 2, 3, 32, 32)).astype(np.float32)
    images[2, 0, 0, 0, 0] = np.inf  # the first micro-step of the second window overflows
    images[3, 1, 0, 0, 0] = np.inf  # and so does its second: one halving for the window
    labels = rng.integers(0, 4, (6, 2)).astype(np.int32)
    return images, labels


@pytest.mark.slow
@pytest.mark.parametrize("model", ["shufflenet_v1_g3_05", "shufflenet_v2_x0_5"])
def test_every_ascend_branch_compiles_and_runs_fed_and_sunk_alike(standin, graph_mode, model):
    images, labels = _batches()
    results = {}
    for feed in ("fed", "sunk"):
        net, step = _ascend_step(model)
        assert step.float_status is not None and step.keep_bn_stats and step.use_ema and step.accumulate
        reader = StepStatsReader(step)
        if feed == "fed":
            for x, y in zip(images, labels):
                step(ms.Tensor(x), ms.Tensor(y))
        else:
            data = ds.NumpySlicesDataset({"image": images, "label": labels}, shuffle=False)
            sink = npu.data_sink(step, data, sink_size=1, jit_config=ms.JitConfig(jit_level="O0"))
            for _ in range(len(images)):
                sink()
        stats = reader.read()
        assert stats.bad_steps == 2, feed
        assert float(step.scale_sense.asnumpy()) == 32.0, feed  # two bad micro-steps, one window: halved once
        assert int(step.skipped_updates.asnumpy()) == 1 and int(step.optimizer.global_step.asnumpy()[0]) == 3
        results[feed] = _weights(step)
    assert any(np.any(v != 0) for k, v in results["sunk"].items() if k.startswith("ema."))
    for name, value in results["fed"].items():
        np.testing.assert_allclose(results["sunk"][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


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
    from conftest import free_port

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
    assert measured["img_per_second"] == pytest.approx(4 * 1000 / measured["ms_per_step"], rel=0.01)
    assert report["published"]["compile_seconds"] == 169.0  # MindCV's figure for this model, beside ours
