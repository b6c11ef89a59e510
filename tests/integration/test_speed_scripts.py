"""scripts/benchmark.py and the experiments under benchmarks/experiments/: quick runs (tiny sizes, one round, no
PyTorch needed), and one-line refusals (their arithmetic: unit/test_speed_scripts.py)."""

import importlib.util
import json
import math

import pytest


@pytest.mark.slow
def test_benchmark_quick_run_writes_a_table_a_json_file_and_a_chart(run_cli, tmp_path):
    """One round at a tiny size: each framework in a process of its own, with the thread count asked for."""
    result = run_cli("scripts/benchmark.py", "--models", "shufflenet_v2_x0_5", "--frameworks",
                     "ours,onnxruntime,onnxruntime-int8", "--batch", "1", "--image-size", "32", "--repeats", "1",
                     "--steps", "1", "--latency-calls", "1", "--threads", "1", "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    assert "figures to quote need at least 3 rounds" in result.stdout
    data = json.loads((tmp_path / "benchmark.json").read_text())
    frameworks = ["ours", "onnxruntime", "onnxruntime-int8"]
    assert [(r["model"], r["framework"]) for r in data["results"]] == [("shufflenet_v2_x0_5", fw) for fw in frameworks]
    for row in data["results"]:
        assert not row["error"] and len(row["rounds"]) == 1
        for key in ("infer_img_s", "latency_ms", "peak_rss_mb"):
            assert row[key] > 0 and math.isfinite(row[key]), key
        child = row["rounds"][0]
        assert child["threads"] == 1 and child["omp_num_threads"] == "1"  # as the framework reports it
    ours, onnx_float, onnx_int8 = data["results"]
    assert ours["train_img_s"] > 0 and ours["first_step_s"] > 0 and ours["first_step_cpu_s"] > 0
    # inference timed as validate.py runs it: BatchNorm folded (every one of V2's 56)
    assert data["machine"]["fold_bn"] and ours["rounds"][0]["batchnorm_folded"] == 56
    assert math.isnan(onnx_float["train_img_s"]) and math.isnan(onnx_int8["first_step_s"])  # inference only
    pids = {row["rounds"][0]["pid"] for row in data["results"]}
    assert len(pids) == 3  # every framework in a process of its own
    assert data["machine"]["threads"] == 1 and data["machine"]["repeats"] == 1
    assert len(data["machine"]["load_average_at_start"]) == len(data["machine"]["load_average_at_end"]) == 3
    assert set(data["ratios"]["shufflenet_v2_x0_5"]) == {"onnxruntime", "onnxruntime-int8"}
    assert math.isnan(data["ratios"]["shufflenet_v2_x0_5"]["onnxruntime"]["train"])
    assert data["ratios"]["shufflenet_v2_x0_5"]["onnxruntime-int8"]["infer"] > 0
    table = (tmp_path / "benchmark.md").read_text()
    assert "alternating (ours, onnxruntime, onnxruntime-int8), 1 round, 1 thread each" in table
    assert "Load average (1, 5, 15 min) at start: " in table
    assert "BatchNorm folded into the convolutions, as validate.py and infer.py run it" in table
    for fw in frameworks:
        assert f"| shufflenet_v2_x0_5 | {fw} |" in table
    assert "| shufflenet_v2_x0_5 | onnxruntime | - | " in table  # no training in onnxruntime
    assert "| shufflenet_v2_x0_5 | onnxruntime-int8 | - | " in table.split("Ratios")[1]
    assert (tmp_path / "benchmark.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("frameworks, message", [
    ("ours,tensorflow", "error: unknown framework 'tensorflow': choose from ours, ours-native, torchvision, mindcv, "
                        "onnxruntime, onnxruntime-int8, comma-separated, or all"),
    ("torchvision", "error: torchvision needs the torch package, which this Python"),
])
def test_benchmark_refuses_an_unknown_or_missing_framework_with_one_line(run_cli, frameworks, message, tmp_path):
    if frameworks == "torchvision" and importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed in this Python")
    result = run_cli("scripts/benchmark.py", "--frameworks", frameworks, "--out-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "benchmark.json").exists()


def test_benchmark_rejects_a_model_name_matching_nothing(run_cli, tmp_path):
    result = run_cli("scripts/benchmark.py", "--models", "resnet50", "--out-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("error: no model matches 'resnet50': see the names in "
                                                      "list_models()")


@pytest.mark.slow
def test_guidelines_quick_run_prints_the_papers_figures_beside_the_measurements(run_cli, tmp_path):
    result = run_cli("benchmarks/experiments/guidelines.py", "--tables", "4", "--setups", "cpu", "--scales", "1",
                     "--repeats", "1", "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "guidelines.md").read_text()
    assert "| ReLU + shortcut | c = 32 |" in text and "| 56.7 | 1.00 |" in text and "| 66.3 | 1.17 |" in text
    rows = json.loads((tmp_path / "guidelines.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["ReLU + shortcut", "ReLU, no shortcut", "shortcut, no ReLU", "neither"]
    assert rows[0]["relative"] == 1.0 and all(r["speed"] > 0 for r in rows)
    assert (tmp_path / "guidelines.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_guidelines_replot_rewrites_the_same_table_from_saved_measurements(run_cli, tmp_path):
    run = tmp_path / "run"
    run_cli("benchmarks/experiments/guidelines.py", "--tables", "3", "--setups", "cpu", "--scales", "1", "--repeats",
            "1", "--out-dir", run, check=True)
    again = tmp_path / "again"
    result = run_cli("benchmarks/experiments/guidelines.py", "--replot", run / "guidelines.json", "--out-dir", again)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (again / "guidelines.md").read_text() == (run / "guidelines.md").read_text()
    assert (again / "guidelines.png").read_bytes()[:4] == b"\x89PNG"


def test_gemm_benchmark_checks_both_products_agree_and_prints_a_row_per_shape(run_cli):
    result = run_cli("benchmarks/experiments/bench_gemm.py", "--batch", "1", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "->" in line]
    assert len(rows) == 5 and all(row.rstrip().endswith("x |") for row in rows), result.stdout


@pytest.mark.slow
def test_compile_profile_runs_a_first_step_and_prints_the_phases(run_cli):
    result = run_cli("benchmarks/experiments/profile_compile.py", "--model", "shufflenet_v2_x0_5", "--batch", "2",
                     "--image-size", "32")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "front end: type_inference |" in result.stdout and "front end: optimize |" in result.stdout, result.stdout
