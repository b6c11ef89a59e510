"""The Ascend paths as far as a machine without an NPU can check them: every command refuses an unavailable
device with one line, AIR export asks for a fixed batch, the sunk benchmark's source has a length, and the
train step picks the float-status handling only on Ascend."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet import runtime

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ASCEND_RECIPE = str(ROOT / "configs" / "shufflenetv2" / "shufflenet_v2_x0_5_ascend.yaml")

def _ascend_here() -> bool:
    try:
        runtime.check_device_available("Ascend")
        return True
    except ValueError:
        return False


needs_no_ascend = pytest.mark.skipif(_ascend_here(), reason="this machine has Ascend")


def run(script, *args):
    return subprocess.run([PYTHON, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def assert_one_line_device_error(proc, device="Ascend"):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: device_target {device} is not available on this machine (")
    assert "--device_target CPU" in lines[0] and "Traceback" not in proc.stderr


@needs_no_ascend
def test_an_ascend_recipe_without_ascend_is_one_line_exit_2(tmp_path):
    proc = run("train.py", "--config", ASCEND_RECIPE, "--data_dir", str(tmp_path), "--distribute", "False",
               "--ckpt_save_dir", str(tmp_path / "run"))
    assert_one_line_device_error(proc)
    assert "Ascend toolkit" in proc.stderr


@needs_no_ascend
@pytest.mark.parametrize("script, args", [
    ("validate.py", ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "x.ckpt", "--data_dir", "."]),
    ("infer.py", ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "x.ckpt", "IMAGE"]),
    ("export.py", ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "x.ckpt"]),
    ("scripts/benchmark.py", ["--models", "shufflenet_v2_x0_5"]),
])
def test_every_command_refuses_an_unavailable_ascend_with_one_line(script, args, tmp_path):
    from PIL import Image

    from mindcv_shufflenet import create_model
    from mindcv_shufflenet.models.weights import save_checkpoint

    image = tmp_path / "one.png"
    Image.new("RGB", (8, 8)).save(image)
    ckpt = save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=2), tmp_path / "x.ckpt")
    args = [str(image) if a == "IMAGE" else str(ckpt) if a == "x.ckpt" else a for a in args]
    assert_one_line_device_error(run(script, *args, "--device", "Ascend"))


def test_an_unavailable_gpu_names_the_gpu_build():
    with pytest.raises(ValueError, match=r"^device_target GPU is not available .*MindSpore's GPU build"):
        runtime.check_device_available("GPU")


def test_air_export_needs_a_fixed_batch_size():
    proc = run("export.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", "x.ckpt", "--file_format", "AIR")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: AIR export needs a fixed --batch_size N")
    assert "deprecated" in proc.stderr


def test_sunk_benchmark_source_has_a_length():
    import mindspore.dataset as ds

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    source = benchmark._SameBatch(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), 7)
    data = ds.GeneratorDataset(source, ["x", "y"], shuffle=False)
    assert data.get_dataset_size() == 7  # what ms.data_sink counts; without a length it never ends
    assert len(list(data.create_tuple_iterator(num_epochs=1))) == 7


def test_the_float_status_register_is_used_only_on_ascend(monkeypatch):
    from mindcv_shufflenet.npu import STANDIN_ENV, uses_float_status_register

    monkeypatch.delenv(STANDIN_ENV, raising=False)
    assert runtime.current_device() == "CPU"
    assert uses_float_status_register() is False
