"""The Ascend paths as far as a machine without an NPU can check them: every command refuses an unavailable
device with one line, and AIR export asks for a fixed batch (in process: unit/test_ascend_paths.py)."""

import pytest

from mindcv_shufflenet import runtime
from tests.helpers import ROOT

ASCEND_RECIPE = str(ROOT / "configs" / "shufflenetv2" / "shufflenet_v2_x0_5_ascend.yaml")


def _ascend_here() -> bool:
    try:
        runtime.check_device_available("Ascend")
        return True
    except ValueError:
        return False


needs_no_ascend = pytest.mark.skipif(_ascend_here(), reason="this machine has Ascend")


def assert_one_line_device_error(proc, device="Ascend"):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: device_target {device} is not available on this machine (")
    assert "--device_target CPU" in lines[0] and "Traceback" not in proc.stderr


@needs_no_ascend
def test_an_ascend_recipe_without_ascend_is_one_line_exit_2(run_cli, tmp_path):
    proc = run_cli("train.py", "--config", ASCEND_RECIPE, "--data_dir", str(tmp_path), "--distribute", "False",
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
def test_every_command_refuses_an_unavailable_ascend_with_one_line(run_cli, script, args, tmp_path):
    from PIL import Image

    from mindcv_shufflenet import create_model
    from mindcv_shufflenet.models.weights import save_checkpoint

    image = tmp_path / "one.png"
    Image.new("RGB", (8, 8)).save(image)
    ckpt = save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=2), tmp_path / "x.ckpt")
    args = [str(image) if a == "IMAGE" else str(ckpt) if a == "x.ckpt" else a for a in args]
    assert_one_line_device_error(run_cli(script, *args, "--device", "Ascend", timeout=300))


def test_air_export_needs_a_fixed_batch_size(run_cli):
    proc = run_cli("export.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", "x.ckpt", "--file_format", "AIR")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: AIR export needs a fixed --batch_size N")
    assert "deprecated" in proc.stderr
