"""The keyed compile cache: what MindSpore checks (and does not), a key that changes with whatever shapes the
train step's graph, the cache switched on for that one compile only, and real runs: a resume that loads the
cached graph ends with the uncached run's weights; a run with another batch compiles its own graph."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet import compile_cache
from mindcv_shufflenet.config import load_config
from mindcv_shufflenet.data.datasets import create_train_dataset
from mindcv_shufflenet.engine.faults import FAIL_ENV
from mindcv_shufflenet.models import create_model
from mindcv_shufflenet.models.weights import read_checkpoint
from tests.helpers import ROOT

PYTHON = sys.executable
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")
MODEL = "shufflenet_v2_x0_5"
# 64 digits an epoch (2 steps of 32), 2 epochs, EMA: a resume after a failure in epoch 2 restores every state.
RUN = ["--config", DEMO, "--num_samples", "64", "--batch_size", "32", "--epoch_size", "2", "--warmup_epochs", "0",
       "--decay_epochs", "2", "--val_while_train", "false", "--log_interval", "1", "--ema", "true",
       "--ema_decay", "0.9", "--seed", "3", "--plot", "false"]


@pytest.fixture
def fresh_process_state(monkeypatch):
    """As in a new process: no cache folder used yet, MindSpore's switches unset."""
    monkeypatch.setattr(compile_cache, "_process_folder", None)
    monkeypatch.delenv(compile_cache.ENV_ENABLE, raising=False)
    monkeypatch.delenv(compile_cache.ENV_PATH, raising=False)


# ----------------------------------------------------------------------------------- what MindSpore checks

def test_mindspore_hashes_only_train_py_and_the_modules_it_imports_at_top_level(monkeypatch):
    """MindSpore 2.10's own check, as the docs page describes it: the model and train step files are not in it."""
    import mindspore.graph.api as api

    entry = str(ROOT / "train.py")
    monkeypatch.setattr(api, "entry_script_path", entry)
    monkeypatch.setattr(api, "sys_path", [p for p in sys.path if p not in ("", str(ROOT), os.getcwd())])
    checked = {Path(p).resolve().relative_to(ROOT).as_posix() for p in api._get_compile_cache_dep_files()}
    assert "train.py" in checked and "mindcv_shufflenet/config.py" in checked
    assert not {"mindcv_shufflenet/engine/train_step.py", "mindcv_shufflenet/models/shufflenet_v2.py"} & checked


# ----------------------------------------------------------------------------------- the key

def _options(*extra):
    return load_config(["--config", DEMO, *extra]).as_dict()


@pytest.mark.parametrize("change", [
    ["--batch_size", "16"], ["--image_resize", "48"], ["--model", "shufflenet_v2_x1_0"], ["--amp_level", "O2"],
    ["--jit_level", "O1"], ["--opt", "adamw"], ["--num_classes", "12"], ["--ema", "true"], ["--seed", "1"],
    ["--gradient_accumulation_steps", "2"], ["--mixup", "0.2"], ["--loss_scale_type", "dynamic"],
])
def test_a_change_that_shapes_the_graph_changes_the_key(change):
    base = compile_cache.cache_key({"options": compile_cache.graph_options(_options())})
    changed = compile_cache.cache_key({"options": compile_cache.graph_options(_options(*change))})
    assert changed != base


@pytest.mark.parametrize("change", [
    ["--data_dir", "/elsewhere"], ["--ckpt_save_dir", "/other/run"], ["--resume", "auto"], ["--log_interval", "3"],
    ["--keep_checkpoint_max", "5"], ["--num_parallel_workers", "1"], ["--compile_cache_dir", "/shared"],
])
def test_paths_logging_and_resume_keep_the_key(change):
    base = compile_cache.cache_key({"options": compile_cache.graph_options(_options())})
    assert compile_cache.cache_key({"options": compile_cache.graph_options(_options(*change))}) == base


def test_graph_fingerprint_tells_models_classes_and_padding_apart():
    def fingerprint(name="shufflenet_v2_x0_5", **kwargs):
        return compile_cache.graph_fingerprint(create_model(name, **kwargs))

    base = fingerprint(num_classes=10)
    assert fingerprint(num_classes=10) == base  # built again: the same graph
    assert fingerprint("shufflenet_v2_x1_0", num_classes=10) != base
    assert fingerprint(num_classes=11) != base
    assert fingerprint(num_classes=10, pool_padding="symmetric") != base


def test_the_source_digest_changes_with_any_line_of_the_package(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(compile_cache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = compile_cache.source_digest(package)
    assert compile_cache.source_digest(package) == before
    step = package / "engine" / "train_step.py"
    step.write_text(step.read_text() + "\n# a comment\n")
    compile_cache.source_digest.cache_clear()
    assert compile_cache.source_digest(package) != before


def test_the_environment_facts_name_mindspore_device_and_switches(monkeypatch):
    import mindspore as ms

    monkeypatch.setenv("MINDCV_SHUFFLENET_CPU_KERNELS", "0")
    facts = compile_cache.environment_facts("CPU", "graph", None, 1)
    assert facts["mindspore"] == ms.__version__ and facts["device"] == "CPU"
    assert facts["environment"]["MINDCV_SHUFFLENET_CPU_KERNELS"] == "0"
    assert facts["source"] == compile_cache.source_digest()
    assert compile_cache.environment_facts("Ascend", "graph", "O0", 8) != facts


# ----------------------------------------------------------------------------------- switching the cache

def test_the_cache_is_on_only_inside_the_block_and_once_per_process(tmp_path, fresh_process_state, monkeypatch):
    monkeypatch.setenv(compile_cache.ENV_PATH, "/user/kernel_meta")
    with compile_cache.cache_enabled(tmp_path / "a") as active:
        assert active
        assert os.environ[compile_cache.ENV_ENABLE] == "1"
        assert os.environ[compile_cache.ENV_PATH] == str((tmp_path / "a").resolve())
    assert compile_cache.ENV_ENABLE not in os.environ  # unset, not "0" (which MindSpore's C++ reads as on)
    assert os.environ[compile_cache.ENV_PATH] == "/user/kernel_meta"
    with compile_cache.cache_enabled(tmp_path / "b") as active:  # MindSpore keeps the first folder
        assert not active and compile_cache.ENV_ENABLE not in os.environ
    assert not (tmp_path / "b").exists()


def test_an_uncreatable_cache_folder_leaves_the_cache_off(tmp_path, fresh_process_state):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with compile_cache.cache_enabled(blocker / "cache") as active:
        assert not active and compile_cache.ENV_ENABLE not in os.environ


def test_a_switch_set_by_the_user_is_left_to_mindspore_with_a_warning(fresh_process_state, monkeypatch):
    assert compile_cache.user_cache_note() is None
    monkeypatch.setenv(compile_cache.ENV_ENABLE, "1")
    note = compile_cache.user_cache_note()
    assert note.startswith("MS_COMPILER_CACHE_ENABLE is set") and "compile_cache: true" in note


def test_older_key_folders_of_a_run_are_removed_and_others_kept(tmp_path):
    keep, old = tmp_path / ("a" * 20), tmp_path / ("b" * 20)
    for folder in (keep, old, tmp_path / "notes"):
        (folder / "rank_0").mkdir(parents=True)
    compile_cache.remove_other_keys(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep.name, "notes"])


@pytest.mark.parametrize("augment", [{}, {"mixup": 0.2}])
def test_the_precompiled_inputs_match_the_training_batches(images, augment):
    data = create_train_dataset(str(images), batch_size=8, image_size=16, num_samples=16, num_parallel_workers=1,
                                **augment)
    image, label = next(data.iterator(output_numpy=True))
    spec = compile_cache.step_input_spec(8, 16, data.num_classes, data.soft_labels)
    assert ((image.shape, str(image.dtype)), (label.shape, str(label.dtype))) == spec


# ----------------------------------------------------------------------------------- real runs

def _train(out, *extra, env=None):
    proc = subprocess.run([PYTHON, str(ROOT / "train.py"), *RUN, "--ckpt_save_dir", str(out), *extra], cwd=out.parent,
                          capture_output=True, text=True, timeout=600, env=env)
    return proc


def _losses(out):
    return [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def _same_weights(a, b):
    expected, got = read_checkpoint(a / f"{MODEL}-last.ckpt"), read_checkpoint(b / f"{MODEL}-last.ckpt")
    assert set(got) == set(expected)
    different = [name for name in expected if not np.array_equal(expected[name], got[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
def test_a_resume_loads_the_cached_step_and_ends_with_the_uncached_runs_weights(images, tmp_path):
    uncached = tmp_path / "uncached"
    proc = _train(uncached, "--data_dir", str(images), "--compile_cache", "false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compile cache" not in proc.stdout and not (uncached / "compile_cache").exists()

    out = tmp_path / "run"
    args = ["--data_dir", str(images), "--resume", "auto"]
    failed = _train(out, *args, env={**os.environ, FAIL_ENV: "0:3"})  # epoch 2's first step
    assert failed.returncode == 1 and "injected failure" in failed.stderr
    assert "train step compiled in" in failed.stdout and "saved to the compile cache" in failed.stdout

    resumed = _train(out, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "train step loaded from the compile cache" in resumed.stdout
    assert _losses(out) == _losses(uncached)
    _same_weights(uncached, out)


@pytest.mark.slow
def test_a_run_with_another_batch_compiles_its_own_graph_with_the_uncached_results(images, tmp_path):
    cache = tmp_path / "cache"
    first = _train(tmp_path / "b32", "--data_dir", str(images), "--compile_cache_dir", str(cache))
    assert first.returncode == 0, first.stderr[-3000:]
    other = _train(tmp_path / "b16", "--data_dir", str(images), "--compile_cache_dir", str(cache),
                   "--batch_size", "16")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "train step compiled in" in other.stdout and "loaded from" not in other.stdout
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2  # one folder per graph

    uncached = _train(tmp_path / "b16-uncached", "--data_dir", str(images), "--batch_size", "16",
                      "--compile_cache", "false")
    assert uncached.returncode == 0, uncached.stderr[-3000:]
    assert _losses(tmp_path / "b16") == _losses(tmp_path / "b16-uncached")
    _same_weights(tmp_path / "b16-uncached", tmp_path / "b16")


@pytest.mark.slow
def test_a_relaunched_msrun_job_loads_each_ranks_cached_step(images, tmp_path):
    msrun = shutil.which("msrun", path=str(Path(PYTHON).parent))
    assert msrun, "msrun comes with mindspore"
    from tests.helpers import free_port

    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def launch(logs, extra_env=None):
        cmd = [msrun, "--worker_num", "2", "--local_worker_num", "2", "--master_addr", "127.0.0.1", "--master_port",
               str(free_port()), "--log_dir", str(tmp_path / logs), "--join", "True", "python",
               str(ROOT / "train.py"), *RUN, "--data_dir", str(images), "--ckpt_save_dir", str(out),
               "--distribute", "True", "--resume", "auto"]
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env={**env, **(extra_env or {})})
        return proc, (tmp_path / logs / "worker_0.log").read_text()

    failed, rank0 = launch("logs1", {FAIL_ENV: "0:2"})  # 32 images per rank: epoch 2's step
    assert failed.returncode != 0 and "injected failure" in rank0
    assert "saved to the compile cache" in rank0
    graphs = sorted(out.glob("compile_cache/*/rank_*/graph_cache/MS_WORKERcompile_cache_0.mindir"))
    assert [g.parts[-3] for g in graphs] == ["rank_0", "rank_1"] and graphs[0].parents[2] == graphs[1].parents[2]
    stamps = [g.stat().st_mtime_ns for g in graphs]

    resumed, rank0 = launch("logs2")
    assert resumed.returncode == 0, rank0[-3000:]
    assert "resumed from" in rank0 and "train step loaded from the compile cache" in rank0
    assert "parameters identical on all 2 ranks" in rank0
    assert [g.stat().st_mtime_ns for g in graphs] == stamps  # both ranks read their graph, neither rewrote it
