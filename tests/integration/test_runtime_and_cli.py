"""What a command gets from the package, run as a user runs it: the oneDNN cap on import, the model-table command,
the CPU layer benchmark, and the package's log messages on stderr (runtime in process: unit/test_runtime.py)."""

import pytest

from mindcv_shufflenet import runtime


def test_importing_the_package_caps_onednn_at_avx2_unless_the_user_chose(run_cli):
    code = "import os, mindcv_shufflenet; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"
    default = run_cli("-c", code, env=dict.fromkeys(runtime.ONEDNN_ISA_VARS))
    chosen = run_cli("-c", code, env={"ONEDNN_MAX_CPU_ISA": "ALL"})
    legacy = run_cli("-c", code, env={"DNNL_MAX_CPU_ISA": "AVX512_CORE", "ONEDNN_MAX_CPU_ISA": None})
    expected = "AVX2" if runtime._is_x86() else "None"
    assert default.stdout.strip() == expected, default.stderr
    assert chosen.stdout.strip() == "ALL"
    assert legacy.stdout.strip() == "None"


def test_model_table_command_prints_computed_figures_and_exits_cleanly(run_cli):
    result = run_cli("-m", "mindcv_shufflenet.summary", "--models", "shufflenet_v2_x0_5")
    assert result.returncode == 0, result.stderr
    row = ("| shufflenet_v2_x0_5 | 1.366 | 1.374 | - | 40.5 | 41 [1] | 1.37 [2] | 60.53 / 82.11 [3] "
           "| 61.10 / 82.60 [4] | 60.30 [5] |")
    assert row in result.stdout
    assert "[1] ShuffleNet V2 paper, Ma et al., ECCV 2018, Table 5" in result.stdout
    assert "[4] official code, megvii-model/ShuffleNet-Series, ShuffleNetV2 model table (error rates" in result.stdout
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr


def test_model_table_command_rejects_a_pattern_matching_nothing(run_cli):
    result = run_cli("-m", "mindcv_shufflenet.summary", "--models", "resnet*")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: no model matches 'resnet*': see the names in list_models()"


@pytest.mark.slow
def test_cpu_layer_benchmark_runs_and_its_variants_agree(run_cli):
    """The benchmark behind the layout choices (README) checks each variant against ours before timing."""
    result = run_cli("benchmarks/experiments/bench_cpu_layers.py", "--skip-networks", "--batch", "2", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    ours = [line for line in result.stdout.splitlines() if line.strip().startswith("ours")]
    assert len(ours) == 12 and all(line.endswith("x1.00") for line in ours)
    assert "computes something else" not in result.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_command_lines_show_the_packages_log_messages_on_stderr(run_cli, debug):
    code = ("import logging, sys\n"
            "from mindcv_shufflenet import runtime\n"
            "def main():\n"
            "    log = logging.getLogger('mindcv_shufflenet.models.weights')\n"
            "    log.debug('detail'); log.info('a note'); log.warning('careful')\n"
            "    print('result')\n"
            "    return 0\n"
            f"runtime.run_cli(main, debug={debug})\n")
    result = run_cli("-c", code)
    assert result.returncode == 0 and result.stdout == "result\n"
    assert result.stderr.splitlines() == ["detail"] * debug + ["a note", "warning: careful"]
