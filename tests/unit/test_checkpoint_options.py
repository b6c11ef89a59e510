"""Checkpoints carry the model options their weights need; fine-tuning replaces only the classifier."""

import logging

import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet import create_model
from mindcv_shufflenet.models import CheckpointMismatchError, load_checkpoint
from mindcv_shufflenet.models.weights import (
    META_KEY,
    checkpoint_classes,
    checkpoint_record,
    read_checkpoint_with_meta,
    save_checkpoint,
)
from tests.helpers import randomize, run_eval, save_training_checkpoint, state_of

IMAGE = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
MEGVII_PAD = [-2.1179, -2.0357, -1.8044]


def test_create_model_applies_the_options_a_checkpoint_records(tmp_path):
    source = randomize(create_model("shufflenet_v2_x0_5", pool_padding="symmetric", stem_pad_value=MEGVII_PAD), seed=1)
    save_checkpoint(source, tmp_path / "net.ckpt", model_name="shufflenet_v2_x0_5", class_names=None)
    _, meta = read_checkpoint_with_meta(tmp_path / "net.ckpt")
    assert meta["model"] == "shufflenet_v2_x0_5" and meta["num_classes"] == 1000
    assert meta["options"]["pool_padding"] == "symmetric"
    net = create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "net.ckpt"))
    assert net.options == source.options
    np.testing.assert_array_equal(run_eval(net, IMAGE), run_eval(source, IMAGE))
    # None means "not given" (what a command line passes for an unset flag)
    create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "net.ckpt"), pool_padding=None)


def test_an_option_contradicting_the_checkpoint_is_an_error_naming_both(tmp_path):
    save_checkpoint(create_model("shufflenet_v1_g3_05", pool_padding="symmetric"), tmp_path / "v1.ckpt")
    with pytest.raises(ValueError, match=r"v1\.ckpt was saved with pool_padding='symmetric', but pool_padding='same' "
                                         r"was passed: leave pool_padding out"):
        create_model("shufflenet_v1_g3_05", checkpoint_path=str(tmp_path / "v1.ckpt"), pool_padding="same")
    net = create_model("shufflenet_v1_g3_05", checkpoint_path=str(tmp_path / "v1.ckpt"), pool_padding="symmetric")
    assert net.options["pool_padding"] == "symmetric"


def test_loading_into_a_network_built_with_other_options_is_refused(tmp_path):
    save_checkpoint(create_model("shufflenet_v2_x0_5", pool_padding="symmetric"), tmp_path / "sym.ckpt")
    net = create_model("shufflenet_v2_x0_5")
    before = state_of(net)
    with pytest.raises(CheckpointMismatchError, match=r"saved from a network with pool_padding='symmetric' "
                                                      r"\(network: 'same'\)"):
        load_checkpoint(net, tmp_path / "sym.ckpt")
    assert all(np.array_equal(before[k], v) for k, v in state_of(net).items())


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    save_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "x.ckpt", model_name="shufflenet_v2_x0_5")
    with pytest.raises(ValueError, match=r"x\.ckpt holds shufflenet_v2_x0_5 weights, not shufflenet_v2_x1_0"):
        create_model("shufflenet_v2_x1_0", checkpoint_path=str(tmp_path / "x.ckpt"))


def test_safetensors_checkpoints_keep_their_record_and_class_names(tmp_path):
    source = randomize(create_model("shufflenet_v2_x0_5", num_classes=3, classifier_bias=True), seed=2)
    save_checkpoint(source, tmp_path / "net.safetensors", model_name="shufflenet_v2_x0_5",
                    class_names=["ant", "bee", "cat"])
    assert checkpoint_classes(tmp_path / "net.safetensors") == (3, ["ant", "bee", "cat"])
    net = create_model("shufflenet_v2_x0_5", num_classes=3, checkpoint_path=str(tmp_path / "net.safetensors"))
    assert net.classifier.bias is not None
    np.testing.assert_array_equal(run_eval(net, IMAGE), run_eval(source, IMAGE))
    with pytest.raises(ValueError, match="2 class names for a classifier of 3 classes"):
        save_checkpoint(source, tmp_path / "bad.ckpt", class_names=["ant", "bee"])


def test_a_training_loop_can_record_the_settings_with_mindspores_own_saver(tmp_path):
    source = randomize(create_model("shufflenet_v1_g3_05", num_classes=2, pool_padding="symmetric"), seed=6)
    record = checkpoint_record(source, "shufflenet_v1_g3_05", class_names=["no", "yes"])
    # as a training loop saves, or CheckpointConfig(append_info=[record])
    ms.save_checkpoint(source, str(tmp_path / "epoch1.ckpt"), append_dict=record)
    net = create_model("shufflenet_v1_g3_05", num_classes=2, checkpoint_path=str(tmp_path / "epoch1.ckpt"))
    assert net.options["pool_padding"] == "symmetric"
    assert checkpoint_classes(tmp_path / "epoch1.ckpt") == (2, ["no", "yes"])


def test_mindspore_and_mindcv_loaders_skip_the_record(tmp_path):
    source = create_model("shufflenet_v2_x0_5")
    save_checkpoint(source, tmp_path / "net.ckpt")
    loaded = ms.load_checkpoint(str(tmp_path / "net.ckpt"))
    assert isinstance(loaded[META_KEY], str)
    net = create_model("shufflenet_v2_x0_5")
    not_loaded, extra = ms.load_param_into_net(net, loaded)  # what MindCV does
    assert not_loaded == [] and extra == [META_KEY]


def test_finetuning_reinitialises_the_classifier_and_loads_everything_else(tmp_path, caplog):
    source = randomize(create_model("shufflenet_v2_x0_5"), seed=3)
    ckpt = save_training_checkpoint(source, tmp_path / "imagenet.ckpt")
    with caplog.at_level(logging.INFO, logger="mindcv_shufflenet"):
        net = create_model("shufflenet_v2_x0_5", num_classes=10, checkpoint_path=str(ckpt), finetune=True)
    assert "its classifier has 1000 classes, the network 10: the classifier is re-initialised" in caplog.text
    theirs, ours = state_of(source), state_of(net)
    assert ours["classifier.weight"].shape == (10, 1024) and np.abs(ours["classifier.weight"]).max() < 0.1
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours if not k.startswith("classifier."))


def test_another_class_count_without_finetune_says_how_to_get_it(tmp_path):
    ckpt = save_training_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "imagenet.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"the checkpoint's classifier has 1000 classes, the network 10: "
                                                      r"set num_classes=1000, or finetune=True"):
        create_model("shufflenet_v2_x0_5", num_classes=10, checkpoint_path=str(ckpt))
    with pytest.raises(ValueError,
                       match="finetune=True re-initialises a checkpoint's classifier: give checkpoint_path"):
        create_model("shufflenet_v2_x0_5", finetune=True)


def test_finetuning_from_converted_torchvision_weights_keeps_their_options(tmp_path, capsys):
    source = randomize(create_model("shufflenet_v2_x1_0", pool_padding="symmetric", proj_channels="half",
                                    classifier_bias=True), seed=4)
    save_checkpoint(source, tmp_path / "tv.ckpt", model_name="shufflenet_v2_x1_0")
    net = create_model("shufflenet_v2_x1_0", num_classes=5, checkpoint_path=str(tmp_path / "tv.ckpt"), finetune=True)
    assert net.options["proj_channels"] == "half" and tuple(net.classifier.bias.shape) == (5,)
    assert np.array_equal(state_of(net)["features.0.branch_proj.2.weight"],
                          state_of(source)["features.0.branch_proj.2.weight"])
    same = create_model("shufflenet_v2_x1_0", checkpoint_path=str(tmp_path / "tv.ckpt"), finetune=True)
    np.testing.assert_array_equal(run_eval(same, IMAGE), run_eval(source, IMAGE))  # same classes: all loaded
