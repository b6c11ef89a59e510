import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet import runtime

ROOT = Path(__file__).resolve().parents[1]


def run_python(code, env_update=None, unset=()):
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(env_update or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def test_importing_the_package_caps_onednn_at_avx2_unless_the_user_chose():
    code = "import os, mindcv_shufflenet; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"
    default = run_python(code, unset=runtime.ONEDNN_ISA_VARS)
    chosen = run_python(code, env_update={"ONEDNN_MAX_CPU_ISA": "ALL"})
    legacy = run_python(code, env_update={"DNNL_MAX_CPU_ISA": "AVX512_CORE"}, unset=("ONEDNN_MAX_CPU_ISA",))
    expected = "AVX2" if runtime._is_x86() else "None"
    assert default.stdout.strip() == expected, default.stderr
    assert chosen.stdout.strip() == "ALL"
    assert legacy.stdout.strip() == "None"


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "TPU"}, "device: unknown value 'TPU'"),
    ({"mode": "eager"}, "mode: unknown value 'eager'"),
    ({"jit_level": "O3"}, "jit_level: unknown value 'O3'"),
    ({"num_threads": 0}, "num_threads must be >= 1"),
])
def test_init_runtime_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        runtime.init_runtime(**kwargs)


def test_init_runtime_selects_mode_and_seeds_reproducibly():
    import mindspore as ms
    from mindcv_shufflenet import create_model

    info = runtime.init_runtime(device="cpu", mode="PyNative", seed=11, num_threads=2)
    assert (info.device, info.mode, runtime.current_device()) == ("CPU", "pynative", "CPU")
    first = dict(create_model("shufflenet_v2_x0_5").parameters_and_names())["classifier.weight"].asnumpy()
    runtime.set_seed(11)
    second = dict(create_model("shufflenet_v2_x0_5").parameters_and_names())["classifier.weight"].asnumpy()
    np.testing.assert_array_equal(first, second)
    runtime.set_seed(5)
    draws = np.random.rand(3)
    runtime.set_seed(5)
    np.testing.assert_array_equal(draws, np.random.rand(3))
    runtime.set_mode("graph")
    assert runtime.current_mode() == "graph" and ms.get_context("mode") == ms.GRAPH_MODE
    runtime.set_mode("pynative")


def test_model_table_command_prints_computed_figures_and_exits_cleanly():
    result = subprocess.run([sys.executable, "-m", "mindcv_shufflenet.summary", "--models", "shufflenet_v2_x0_5"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| shufflenet_v2_x0_5 | 1.366 | 1.374 | - | 40.5 | 41 [1] | 1.37 [2] | 60.53 [3] | 61.10 [4] |" in result.stdout
    assert "[1] ShuffleNet V2 paper (Ma et al., ECCV 2018), Table 5" in result.stdout
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr


def test_model_table_command_rejects_a_pattern_matching_nothing():
    result = subprocess.run([sys.executable, "-m", "mindcv_shufflenet.summary", "--models", "resnet*"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: no model matches 'resnet*': see the names in list_models()"


@pytest.mark.slow
def test_cpu_layer_benchmark_runs_and_its_variants_agree():
    """The benchmark behind the layout choices (README) checks each variant against ours before timing."""
    result = subprocess.run([sys.executable, "benchmarks/experiments/bench_cpu_layers.py", "--skip-networks", "--batch", "2",
                             "--repeats", "1"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    ours = [line for line in result.stdout.splitlines() if line.strip().startswith("ours")]
    assert len(ours) == 12 and all(line.endswith("x1.00") for line in ours)
    assert "computes something else" not in result.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_command_lines_show_the_packages_log_messages_on_stderr(debug):
    code = ("import logging, sys\n"
            "from mindcv_shufflenet import runtime\n"
            "def main():\n"
            "    log = logging.getLogger('mindcv_shufflenet.models.weights')\n"
            "    log.debug('detail'); log.info('a note'); log.warning('careful')\n"
            "    print('result')\n"
            "    return 0\n"
            f"runtime.run_cli(main, debug={debug})\n")
    result = run_python(code)
    assert result.returncode == 0 and result.stdout == "result\n"
    assert result.stderr.splitlines() == ["detail"] * debug + ["a note", "warning: careful"]
