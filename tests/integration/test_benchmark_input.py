"""scripts/benchmark_input.py: train.py's own pipeline timed on real-photo JPEGs at a tiny size, the torchvision
side when a Python with torch is given (skipped with a note otherwise), and the arithmetic of cores per card."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "benchmark_input.py"
RECIPE = str(ROOT / "configs" / "shufflenetv2" / "shufflenet_v2_x0_5_ascend.yaml")
# A Python with torch and torchvision (never this project's): the torchvision side is tested where one is given.
TORCH_PYTHON = os.environ.get("MINDCV_SHUFFLENET_TORCH_PYTHON")
TINY = ["--config", RECIPE, "--photos", "8", "--batch_size", "4", "--workers", "1", "--batches", "2", "--warmup", "1"]


def _load():
    spec = importlib.util.spec_from_file_location("_benchmark_input", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_cores_per_card_follow_the_rate_per_core():
    bench = _load()
    assert bench.NPU_IMG_S == 1530
    assert bench.cores_needed(1530.0, 1) == 1
    assert bench.cores_needed(100.0, 2) == 31  # 50 img/s per core
    assert bench.cores_needed(1600.0, 4) == 4


def test_the_photo_fixture_is_real_jpegs_of_300_to_500_pixels(tmp_path):
    from PIL import Image

    root = _load().write_photo_folder(tmp_path / "photos", images=12, classes=3)
    files = sorted((root / "train").glob("*/*.jpg"))
    assert len(files) == 12 and len({f.parent.name for f in files}) == 3
    for path in files:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 300 <= max(image.size) <= 500 and min(image.size) >= 2 / 3 * max(image.size) - 1
    stamp = {f: f.stat().st_mtime_ns for f in files}
    _load().write_photo_folder(tmp_path / "photos", images=12, classes=3)  # written once, reused
    assert {f: f.stat().st_mtime_ns for f in files} == stamp


@pytest.mark.parametrize("auto_augment, policy", [
    ("randaug-m9-n2-mstd0.5", {"name": "RandAugment", "num_ops": 2, "magnitude": 9, "num_magnitude_bins": 11}),
    ("trivialaugwide", {"name": "TrivialAugmentWide", "num_ops": None, "magnitude": None, "num_magnitude_bins": 32}),
    ("autoaug", {"name": "AutoAugment", "num_ops": None, "magnitude": None, "num_magnitude_bins": None}),
])
def test_torchvision_gets_the_recipes_augmentation(images, auto_augment, policy):
    bench = _load()
    cfg = bench.recipe_config(RECIPE, str(images), 2, 8).replace(auto_augment=auto_augment, re_prob=0.25)
    spec = bench.torch_spec(cfg)
    assert {k: spec["auto_augment"][k] for k in policy} == policy
    assert spec["batch_size"] == 8 and spec["image_size"] == cfg.image_resize == 224
    assert spec["num_classes"] == cfg.num_classes == 1000  # the recipe says so, as train.py reads it
    assert spec["scale"] == list(cfg.scale) and spec["hflip"] == cfg.hflip and spec["re_prob"] == 0.25
    assert spec["mean"] == list(cfg.mean) and spec["folder"] == str(images / "train")


@pytest.mark.slow
def test_the_benchmark_times_train_pys_pipeline_and_prints_cores_per_card(tmp_path):
    out = tmp_path / "input.json"
    proc = _run(*TINY, "--photos_dir", str(tmp_path / "photos"), "--torch_python", str(tmp_path / "no-python"),
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "| workers | mindspore img/s | mindspore img/s per core |"
    row = next(line for line in lines if line.startswith("| 1 |"))
    img_s = float(row.split("|")[2])
    assert img_s > 0
    assert any(line.startswith("mindspore: ") and "cores per Ascend 910 to feed MindCV's 1,530 img/s" in line
               for line in lines)
    assert lines[-1] == f"note: torchvision skipped: {tmp_path / 'no-python'} cannot run (No such file or directory)"
    figures = json.loads(out.read_text())
    assert figures["results"]["mindspore"]["1"][0]["img_s"] == pytest.approx(img_s, rel=0.01)
    assert figures["batch_size"] == 4 and figures["pinned"] is True


@pytest.mark.slow
@pytest.mark.skipif(not TORCH_PYTHON, reason="set MINDCV_SHUFFLENET_TORCH_PYTHON to a Python with torch and "
                                              "torchvision to test the torchvision side")
def test_torchvisions_dataloader_is_measured_beside_it(tmp_path):
    proc = _run(*TINY, "--photos_dir", str(tmp_path / "photos"), "--torch_python", TORCH_PYTHON)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| workers | mindspore img/s | mindspore img/s per core | torchvision img/s | torchvision img/s per core |" \
        in proc.stdout
    assert any(line.startswith("torchvision: ") and "cores per Ascend 910" in line for line in proc.stdout.splitlines())
    assert "torchvision skipped" not in proc.stdout


def test_more_workers_than_usable_cores_is_a_one_line_error():
    usable = len(os.sched_getaffinity(0))
    proc = _run("--config", RECIPE, "--workers", f"1,{usable + 1}", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f"--workers must be between 1 and the {usable} cores this process may use (or give --no_pin), "
        f"got [1, {usable + 1}]")
