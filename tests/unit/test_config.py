"""Configuration: MindCV's YAML keys with MindCV's meaning, overrides, and clear errors."""

import pytest
import yaml

from mindcv_shufflenet.config import ConfigError, load_config, save_config

# A recipe written the way MindCV's ShuffleNet YAML files are (older keys and an integer mode included).
MINDCV_STYLE = """
mode: 0
distribute: False
num_parallel_workers: 8
val_while_train: True
dataset: 'imagenet'
data_dir: '/data/imagenet'
shuffle: True
dataset_download: False
batch_size: 64
drop_remainder: True
image_resize: 224
hflip: 0.5
color_jitter: 0.4
interpolation: 'bilinear'
crop_pct: 0.875
re_prob: 0.5
model: 'shufflenet_v2_x1_0'
num_classes: 1000
pretrained: False
ckpt_path: ""
keep_checkpoint_max: 30
ckpt_save_dir: './ckpt'
epoch_size: 300
dataset_sink_mode: True
amp_level: 'O3'
loss: 'CE'
label_smoothing: 0.1
scheduler: 'cosine_decay'
min_lr: 0.0
lr: 0.4
warmup_epochs: 5
decay_epochs: 295
opt: 'momentum'
filter_bias_and_bn: False
momentum: 0.9
weight_decay: 4e-5
loss_scale: 1024
use_nesterov: False
"""


@pytest.fixture
def mindcv_yaml(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(MINDCV_STYLE)
    return str(path)


def test_mindcv_recipe_loads_with_mindcvs_meaning(mindcv_yaml):
    cfg = load_config(["--config", mindcv_yaml])
    assert cfg.mode == "graph"  # MindCV's mode: 0
    assert cfg.weight_decay == pytest.approx(4e-5)  # YAML reads 4e-5 as a string; still a number here
    assert cfg.weight_decay_filter == "auto"  # filter_bias_and_bn: False in older MindCV
    assert cfg.amp_level == "O3" and cfg.loss_scale == 1024 and cfg.loss_scale_type == "fixed"
    assert cfg.model == "shufflenet_v2_x1_0" and cfg.epoch_size == 300


def test_command_line_overrides_the_file(mindcv_yaml):
    cfg = load_config(["--config", mindcv_yaml, "--lr", "0.2", "--scale", "0.1,1.0", "--val_while_train", "false",
                       "--ema"])
    assert cfg.lr == 0.2 and cfg.scale == (0.1, 1.0) and cfg.val_while_train is False and cfg.ema is True


def test_legacy_model_names_are_accepted():
    assert load_config(["--model", "shufflenet_v1_g3_x1_0"]).model == "shufflenet_v1_g3_10"


def test_effective_config_round_trips(tmp_path, mindcv_yaml):
    cfg = load_config(["--config", mindcv_yaml, "--lr", "0.3"])
    save_config(cfg, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["lr"] == 0.3 and saved["weight_decay_filter"] == "auto"
    again = load_config(["--config", str(tmp_path / "config.yaml")])
    assert again.as_dict() == cfg.as_dict()


@pytest.mark.parametrize("argv, message", [
    (["--model", "shufflenet_v2_x1_0", "--lrr", "0.1"], "unknown option --lrr (did you mean 'lr'?)"),
    (["--model", "shufflenet_v2_x1"], "did you mean shufflenet_v2_x1_5"),
    (["--model", "shufflenet_v2_x1_0", "--batch_size", "0"], "batch_size must be >= 1"),
    (["--model", "shufflenet_v2_x1_0", "--batch_size", "eight"], "batch_size must be an integer"),
    (["--model", "shufflenet_v2_x1_0", "--lr", "-0.1"], "lr must be > 0"),
    (["--model", "shufflenet_v2_x1_0", "--opt", "sgdd"], "opt: unknown value 'sgdd' (did you mean 'sgd'?)"),
    (["--model", "shufflenet_v2_x1_0", "--scheduler", "cosine"], "scheduler: unknown value 'cosine'"),
    (["--model", "shufflenet_v2_x1_0", "--amp_level", "O5"], "amp_level: unknown value 'O5'"),
    (["--model", "shufflenet_v2_x1_0", "--hflip", "1.5"], "hflip must be in [0, 1]"),
    (["--model", "shufflenet_v2_x1_0", "--scale", "1.0,0.08"], "scale must be two increasing positive numbers"),
    (["--model", "shufflenet_v2_x1_0", "--warmup_epochs", "10", "--epoch_size", "5"],
     "warmup_epochs (10, from the command line) must not exceed epoch_size (5, from the command line)"),
    (["--model", "shufflenet_v2_x1_0", "--dataset_download", "true"], "nothing is downloaded here"),
    (["--model", "shufflenet_v2_x1_0", "--resume_opt", "true"], "resume_opt: true needs ckpt_path"),
    (["--lr", "0.1"], "model is required"),
    (["--config", "/no/such/recipe.yaml"], "config file not found: /no/such/recipe.yaml"),
])
def test_bad_values_name_the_key(argv, message):
    with pytest.raises(ConfigError) as err:
        load_config(argv)
    assert message in str(err.value)


def test_unknown_yaml_key_names_the_closest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: shufflenet_v2_x0_5\nwarmup_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'warmup_epoch' \(did you mean 'warmup_epochs'\?\)"):
        load_config(["--config", str(path)])


def test_wrong_yaml_type_names_the_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: shufflenet_v2_x0_5\nshuffle: maybe\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: shuffle must be true or false, got 'maybe'"):
        load_config(["--config", str(path)])


def test_file_that_is_not_yaml_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(["--config", str(path)])


def test_a_check_on_two_keys_names_where_each_value_came_from(mindcv_yaml):
    # MindCV's recipe has warmup_epochs: 5; a user shortens the run on the command line.
    with pytest.raises(ConfigError) as err:
        load_config(["--config", mindcv_yaml, "--epoch_size", "1"])
    assert str(err.value) == (f"warmup_epochs (5, from {mindcv_yaml}) must not exceed epoch_size (1, from the "
                              f"command line): lower warmup_epochs or raise epoch_size")
    with pytest.raises(ConfigError) as err:
        load_config(["--model", "shufflenet_v2_x1_0", "--epoch_size", "2"])
    assert str(err.value).startswith("warmup_epochs (3, the default) must not exceed epoch_size (2, from the "
                                     "command line)")
    with pytest.raises(ConfigError) as err:
        load_config(["--config", mindcv_yaml, "--min_lr", "0.5"])
    assert str(err.value) == f"min_lr (0.5, from the command line) must not exceed lr (0.4, from {mindcv_yaml})"


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_config_and_data_pipeline_accept_the_same_mean_and_std(length):
    """Images are decoded to RGB, so both ask for one mean and one std per R, G, B channel: a value the
    configuration accepts is one the pipeline accepts."""
    from mindcv_shufflenet.data.transforms import check_mean_std

    values = ",".join(["100"] * length)
    argv = ["--model", "shufflenet_v2_x0_5", "--mean", values, "--std", values]
    if length == 3:
        cfg = load_config(argv)
        assert check_mean_std(cfg.mean, cfg.std) == ([100.0] * 3, [100.0] * 3)
        return
    with pytest.raises(ConfigError, match=r"mean needs 3 values \(R, G, B on the 0-255 scale\)"):
        load_config(argv)
    with pytest.raises(ValueError, match="mean must be 3 numbers"):
        check_mean_std([100.0] * length, [100.0] * 3)


def test_in_channels_other_than_rgb_is_refused_before_the_run():
    with pytest.raises(ConfigError, match="in_channels must be 3: images are decoded to 3 channels"):
        load_config(["--model", "shufflenet_v2_x0_5", "--in_channels", "1", "--mean", "100", "--std", "50"])
    assert load_config(["--model", "shufflenet_v2_x0_5"]).in_channels == 3


def test_debug_is_a_command_line_flag_not_a_setting():
    cfg = load_config(["--model", "shufflenet_v2_x0_5", "--debug"])
    assert "debug" not in cfg.as_dict() and not hasattr(cfg, "debug")


def test_aux_factor_is_one_weight_or_one_per_auxiliary_head():
    assert load_config(["--model", "shufflenet_v2_x0_5"]).aux_factor == (0.0,)  # MindCV's default: no aux loss
    cfg = load_config(["--model", "shufflenet_v2_large", "--aux_factor", "0.7,0.5,0.3"])
    assert cfg.aux_factor == (0.7, 0.5, 0.3)
    assert load_config(["--model", "shufflenet_v2_large", "--aux_factor", "0.4"]).aux_factor == (0.4,)
    with pytest.raises(ConfigError, match=r"aux_factor must be numbers >= 0, got \[-0.3\]"):
        load_config(["--model", "shufflenet_v2_large", "--aux_factor", "-0.3"])
