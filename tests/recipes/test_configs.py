"""The recipes under configs/: they load, they are what tools/make_configs.py writes, and they say what
the references say. Fast: nothing is trained."""


import pytest
import yaml

import mindcv_shufflenet
from mindcv_shufflenet.config import load_config
from tests.helpers import ROOT, load_script

CONFIGS = ROOT / "configs"
GENERATOR = "tools/make_configs.py"
# The generated recipes (configs/demo/ holds the hand-written demo, tested by tests/test_train.py).
YAML_FILES = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name in ("shufflenetv1", "shufflenetv2"))

# Every model with published ImageNet results (the papers, the official code's READMEs, MindCV).
PUBLISHED = (
    ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
    + [f"shufflenet_v1_g{g}_{w}" for g in (3, 8) for w in ("05", "10", "15", "20")]
    + [f"shufflenet_v1_g{g}_{w}" for g in (1, 2, 4) for w in ("05", "10")]
)
RECIPES = ("ascend", "paper", "cpu")
# The official family beyond MindCV's: the official training script's recipe on Ascend, and on one CPU.
# model: (global batch, lr, epochs, aux_factor); V2+ from ShuffleNetV2+/train.py (450k iterations x 1024),
# V2.Large from ShuffleNetV2.Large/train.py (600k x 256), ExLarge (no script) with Large's, v2-50 the paper's.
FAMILY = {
    "shufflenet_v2_plus_small": (1024, 0.5, 360, (0.0,)),
    "shufflenet_v2_plus_medium": (1024, 0.5, 360, (0.0,)),
    "shufflenet_v2_plus_large": (1024, 0.5, 360, (0.0,)),
    "shufflenet_v2_50": (1024, 0.5, 240, (0.0,)),
    "shufflenet_v2_large": (256, 0.25, 120, (0.7, 0.5, 0.3)),
    "shufflenet_v2_exlarge": (256, 0.25, 120, (0.7, 0.5, 0.3)),
}
FAMILY_RECIPES = ("ascend", "cpu")

# MindCV's recipes (configs/shufflenetv{1,2}/*_ascend.yaml in MindCV): lr, epochs, warmup, re_prob, amp.
MINDCV = {
    "shufflenet_v2_x0_5": (0.35, 250, 4, 0.0, "O3"),
    "shufflenet_v2_x1_0": (0.4, 300, 5, 0.5, "O3"),
    "shufflenet_v2_x1_5": (0.5, 300, 5, 0.5, "O3"),
    "shufflenet_v2_x2_0": (0.5, 300, 5, 0.25, "O3"),
    "shufflenet_v1_g3_05": (0.35, 250, 4, 0.0, "O0"),
    "shufflenet_v1_g3_10": (0.4, 250, 4, 0.0, "O0"),
}
SECTIONS = ["system", "dataset", "augmentation", "model", "loss", "lr scheduler", "optimizer"]


def _path(model, recipe):
    family = "shufflenetv2" if model.startswith("shufflenet_v2") else "shufflenetv1"
    return CONFIGS / family / f"{model}_{recipe}.yaml"


def _load(model, recipe):
    return load_config(["--config", str(_path(model, recipe))])


def _generator():
    return load_script(GENERATOR)


def test_there_are_configs():
    assert len(YAML_FILES) == len(PUBLISHED) * len(RECIPES) + len(FAMILY) * len(FAMILY_RECIPES)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_every_config_loads_and_is_laid_out_like_mindcvs(path):
    cfg = load_config(["--config", str(path)])
    assert cfg.model in mindcv_shufflenet.list_models()
    assert path.name == f"{cfg.model}_{path.stem.rsplit('_', 1)[1]}.yaml"
    assert cfg.data_dir == "/data/imagenet"
    assert cfg.ckpt_save_dir == f"./ckpt/{path.stem}"
    text = path.read_text()
    assert yaml.safe_load(text)["model"] == cfg.model     # the name as written is the registered one
    header = text.split("\n\n", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "Hyperparameters:" in header and "Expected accuracy:" in header
    assert f"--config configs/{path.parent.name}/{path.name} --data_dir /data/imagenet" in header
    sections = [line[2:] for line in text.splitlines() if line.startswith("# ") and line[2:] in SECTIONS]
    assert sections == SECTIONS


def test_every_published_model_has_all_three_recipes_and_nothing_else():
    want = {_path(m, r) for m in PUBLISHED for r in RECIPES} | {_path(m, r) for m in FAMILY for r in FAMILY_RECIPES}
    assert set(YAML_FILES) == want
    registered = set(mindcv_shufflenet.list_models())
    assert set(PUBLISHED) | set(FAMILY) <= registered
    assert {m.name for m in _generator().MODELS} == set(PUBLISHED) | set(FAMILY)


@pytest.mark.parametrize("model", sorted(FAMILY))
def test_family_recipes_are_the_official_training_scripts(model):
    global_batch, lr, epochs, aux_factor = FAMILY[model]
    ascend, cpu = _load(model, "ascend"), _load(model, "cpu")
    assert ascend.device_target == "Ascend" and ascend.distribute and ascend.dataset_sink_mode
    assert ascend.batch_size * 8 == global_batch and ascend.lr == lr and ascend.amp_level == "O2"
    assert (cpu.device_target, cpu.batch_size, cpu.amp_level, cpu.distribute) == ("CPU", 32, "O0", False)
    assert cpu.lr == pytest.approx(lr * 32 / global_batch)
    for cfg in (ascend, cpu):
        assert (cfg.epoch_size, cfg.aux_factor, cfg.scheduler, cfg.warmup_epochs) == (epochs, aux_factor,
                                                                                       "linear_decay", 0)
        assert (cfg.weight_decay, cfg.weight_decay_filter, cfg.label_smoothing) == (4e-5, "official", 0.1)
        assert (cfg.color_jitter, cfg.hflip, cfg.re_prob) == (0.4, 0.5, 0.0)
        assert cfg.drop_rate == (None if model == "shufflenet_v2_50" else 0.2)
    header = _path(model, "ascend").read_text().split("\n\n", 1)[0]
    assert "official" in header and ("train.py" in header or model == "shufflenet_v2_50")


def test_the_files_are_what_the_generator_writes(run_cli):
    run = run_cli(GENERATOR, "--check", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_check_reports_changed_missing_and_stale_files(run_cli, tmp_path):
    out = tmp_path / "configs"
    assert run_cli(GENERATOR, "--out", out, timeout=120).returncode == 0
    assert run_cli(GENERATOR, "--out", out, "--check", timeout=120).returncode == 0
    changed = out / "shufflenetv2" / "shufflenet_v2_x1_0_paper.yaml"
    changed.write_text(changed.read_text().replace("lr: 0.5\n", "lr: 0.4\n"))
    missing = out / "shufflenetv1" / "shufflenet_v1_g8_20_cpu.yaml"
    missing.unlink()
    stale = out / "shufflenetv1" / "shufflenet_v1_g3_x1_0_ascend.yaml"
    stale.write_text("model: shufflenet_v1_g3_10\n")
    run = run_cli(GENERATOR, "--out", out, "--check", timeout=120)
    assert run.returncode == 1
    assert set(run.stdout.splitlines()) == {f"differs: {changed}", f"missing: {missing}",
                                            f"not generated: {stale}"}
    assert run_cli(GENERATOR, "--out", out, timeout=120).returncode == 0
    assert not stale.exists() and missing.is_file() and "lr: 0.5\n" in changed.read_text()


@pytest.mark.parametrize("model", PUBLISHED)
def test_paper_recipe(model):
    cfg = _load(model, "paper")
    assert cfg.device_target == "Ascend" and cfg.distribute and cfg.dataset_sink_mode and cfg.mode == "graph"
    assert cfg.batch_size * 8 == 1024
    assert (cfg.opt, cfg.momentum, cfg.use_nesterov) == ("momentum", 0.9, False)
    assert (cfg.lr, cfg.scheduler, cfg.min_lr, cfg.warmup_epochs) == (0.5, "linear_decay", 0.0, 0)
    assert cfg.epoch_size == 240
    assert (cfg.weight_decay, cfg.weight_decay_filter) == (4e-5, "official")
    assert cfg.label_smoothing == 0.1
    assert (cfg.image_resize, cfg.scale, cfg.color_jitter, cfg.hflip, cfg.re_prob) == (224, (0.08, 1.0), 0.4,
                                                                                         0.5, 0.0)
    assert (cfg.crop_pct, cfg.interpolation) == (0.875, "bilinear")
    assert cfg.amp_level == ("O3" if model.startswith("shufflenet_v2") else "O0")
    assert (cfg.loss_scale_type, cfg.loss_scale) == ("fixed", 1024)
    assert cfg.drop_rate == (0.2 if model == "shufflenet_v2_x2_0" else None)


@pytest.mark.parametrize("model", PUBLISHED)
def test_ascend_recipe_is_mindcvs_where_mindcv_has_one_else_the_papers(model):
    cfg = _load(model, "ascend")
    assert cfg.device_target == "Ascend" and cfg.distribute and cfg.dataset_sink_mode and cfg.mode == "graph"
    header = _path(model, "ascend").read_text().split("\n\n", 1)[0]
    if model not in MINDCV:
        paper = _load(model, "paper").as_dict()
        assert {**cfg.as_dict(), "ckpt_save_dir": None} == {**paper, "ckpt_save_dir": None}
        assert "MindCV has no recipe" in header and "paper" in header
        return
    lr, epochs, warmup, re_prob, amp = MINDCV[model]
    assert (cfg.lr, cfg.epoch_size, cfg.warmup_epochs, cfg.decay_epochs) == (lr, epochs, warmup, epochs - warmup)
    assert (cfg.re_prob, cfg.amp_level, cfg.batch_size) == (re_prob, amp, 64)
    assert (cfg.opt, cfg.momentum, cfg.use_nesterov) == ("momentum", 0.9, False)
    assert (cfg.weight_decay, cfg.weight_decay_filter) == (4e-5, "auto")
    assert (cfg.scheduler, cfg.min_lr, cfg.label_smoothing) == ("cosine_decay", 0.0, 0.1)
    assert (cfg.loss_scale_type, cfg.loss_scale) == ("fixed", 1024)
    assert (cfg.hflip, cfg.color_jitter, cfg.interpolation, cfg.crop_pct, cfg.image_resize) == (
        0.5, 0.4, "bilinear", 0.875, 224)
    assert (cfg.val_while_train, cfg.keep_checkpoint_max, cfg.num_parallel_workers, cfg.drop_remainder) == (
        True, 30, 8, True)
    assert cfg.drop_rate is None
    assert "MindCV's" in header


@pytest.mark.parametrize("model", PUBLISHED)
def test_cpu_recipe_is_the_paper_recipe_scaled_to_one_cpu(model):
    cfg = _load(model, "cpu")
    assert cfg.device_target == "CPU" and not cfg.distribute and not cfg.dataset_sink_mode
    assert (cfg.amp_level, cfg.num_parallel_workers, cfg.batch_size, cfg.log_interval) == ("O0", 2, 32, 20)
    assert cfg.lr == pytest.approx(0.5 * 32 / 1024)
    paper = _load(model, "paper").as_dict()
    same = {k: v for k, v in cfg.as_dict().items()
            if k not in ("device_target", "distribute", "dataset_sink_mode", "amp_level", "num_parallel_workers",
                         "batch_size", "log_interval", "lr", "ckpt_save_dir", "keep_checkpoint_max",
                         "loss_scale")}
    assert same == {k: paper[k] for k in same}
    header = _path(model, "cpu").read_text().split("\n\n", 1)[0]
    assert "python train.py --config configs/" in header and "msrun" not in header


def test_expected_accuracy_comes_from_the_right_source():
    def header(model, recipe):
        return " ".join(_path(model, recipe).read_text().split("\n\n", 1)[0].replace("#", " ").split())

    # MindCV's model card for MindCV recipes, 100 - the official code's top-1 error for the paper recipe,
    # the paper's error where the official code has no model.
    assert "top-1 69.47 / top-5 88.88 (MindCV's" in header("shufflenet_v2_x1_0", "ascend")
    assert "top-1 69.4 / top-5 88.9 (official code" in header("shufflenet_v2_x1_0", "paper")
    assert "top-1 57.05 / top-5 79.73 (MindCV's" in header("shufflenet_v1_g3_05", "ascend")
    assert "top-1 57.3 / top-5 80.0 (official code" in header("shufflenet_v1_g3_05", "paper")
    assert "top-1 72.9 / top-5 90.8 (official code" in header("shufflenet_v1_g8_20", "ascend")
    assert "top-1 66.4 (ShuffleNet V1 paper, Zhang et al., CVPR 2018, Table 2: top-1 error 33.6)" in header(
        "shufflenet_v1_g1_10", "paper")
    assert "top-1 58.4 (ShuffleNet V1 paper, Zhang et al., CVPR 2018, Table 2: top-1 error 41.6)" in header(
        "shufflenet_v1_g4_05", "cpu")
