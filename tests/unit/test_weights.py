"""Loading checkpoints: MindCV's layouts load strictly and reproduce their networks; bad ones fail."""

import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet import create_model, kernels
from mindcv_shufflenet.models import SHUFFLENET_V1_CHANNELS, SHUFFLENET_V2_CHANNELS, CheckpointMismatchError
from mindcv_shufflenet.models.weights import load_checkpoint
from tests.helpers import publish_release, randomize, read_param_list, run_eval, save_training_checkpoint, state_of
from tests.mindcv_reference import RefShuffleNetV1, RefShuffleNetV2

IMAGE = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)


def test_mindcv_v2_checkpoint_reproduces_mindcvs_outputs(tmp_path):
    reference = randomize(RefShuffleNetV2(SHUFFLENET_V2_CHANNELS["x0_5"]), seed=3)
    ckpt = save_training_checkpoint(reference, tmp_path / "v2.ckpt")
    net = create_model("shufflenet_v2_x0_5", checkpoint_path=str(ckpt))
    np.testing.assert_allclose(run_eval(net, IMAGE), run_eval(reference, IMAGE), rtol=1e-5, atol=1e-5)


def test_mindcv_030_v1_checkpoint_reproduces_mindcvs_outputs(tmp_path):
    reference = randomize(RefShuffleNetV1(SHUFFLENET_V1_CHANNELS[3]["05"], groups=3), seed=4)
    ckpt = save_training_checkpoint(reference, tmp_path / "v1.ckpt")
    net = create_model("shufflenet_v1_g3_05", checkpoint_path=str(ckpt))
    np.testing.assert_allclose(run_eval(net, IMAGE), run_eval(reference, IMAGE), rtol=1e-5, atol=1e-5)


def test_mindcv_main_split_conv_v1_checkpoint_loads_exactly(tmp_path):
    reference = randomize(RefShuffleNetV1(SHUFFLENET_V1_CHANNELS[3]["05"], groups=3, split_convs=True,
                                          symmetric_pool=True), seed=5)
    names = [(n, tuple(p.shape), "trainable" if p.requires_grad else "buffer")
             for n, p in reference.parameters_and_names()]
    assert names == read_param_list("shufflenet_v1_g3_05.mindcv-head.txt")  # it is MindCV main's layout
    ckpt = save_training_checkpoint(reference, tmp_path / "v1_head.ckpt")
    net = create_model("shufflenet_v1_g3_05", checkpoint_path=str(ckpt), pool_padding="symmetric")
    np.testing.assert_allclose(run_eval(net, IMAGE), run_eval(reference, IMAGE), rtol=1e-5, atol=1e-5)


def test_gradients_equal_mindcvs_computation():
    reference = randomize(RefShuffleNetV2(SHUFFLENET_V2_CHANNELS["x0_5"], num_classes=10), seed=6)
    # On MindSpore's kernels, as the reference: training-mode BatchNorm over a batch of 2 turns float32
    # rounding differences into large gradient differences, so the CPU fast kernels, which round
    # differently, are compared with MindSpore's kernels where that is well-conditioned
    # (tests/test_cpu_kernels.py).
    with kernels.native_kernels():
        net = create_model("shufflenet_v2_x0_5", num_classes=10)
    for (_, p), (_, q) in zip(net.parameters_and_names(), reference.parameters_and_names()):
        p.set_data(ms.Tensor(q.asnumpy()))
    x, y = ms.Tensor(IMAGE), ms.Tensor(np.array([1, 7], np.int32))
    grads = []
    for model in (net, reference):
        model.set_train(True)
        loss_fn = lambda a, b, m=model: ms.nn.CrossEntropyLoss()(m(a), b)  # noqa: E731
        grads.append(ms.value_and_grad(loss_fn, None, model.trainable_params())(x, y)[1])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=1e-4, atol=1e-6)


def test_ema_weights_are_loaded_on_request(tmp_path):
    source = randomize(create_model("shufflenet_v2_x0_5"), seed=7)
    ckpt = save_training_checkpoint(source, tmp_path / "ema.ckpt", with_ema=True)
    net = create_model("shufflenet_v2_x0_5", checkpoint_path=str(ckpt), ema=True)
    w = dict(net.parameters_and_names())["classifier.weight"].asnumpy()
    np.testing.assert_allclose(w, dict(source.parameters_and_names())["classifier.weight"].asnumpy() * 0.5)


def test_checkpoint_of_another_width_is_rejected_with_the_mismatched_names(tmp_path):
    ckpt = save_training_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "x0_5.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"wrong shape: features\.0\.branch_main\.0\.weight"):
        create_model("shufflenet_v2_x1_0", checkpoint_path=str(ckpt))


def test_partial_checkpoint_lists_missing_names_and_changes_nothing(tmp_path):
    source = randomize(create_model("shufflenet_v1_g3_05"), seed=8)
    entries = [{"name": n, "data": ms.Tensor(p.asnumpy())} for n, p in source.parameters_and_names()
               if not n.startswith("features.15.")]
    ms.save_checkpoint(entries, str(tmp_path / "partial.ckpt"))
    net = create_model("shufflenet_v1_g3_05")
    before = state_of(net)
    with pytest.raises(CheckpointMismatchError,
                       match=r"15 of the network's 246 parameters are missing: features\.15\."):
        load_checkpoint(net, tmp_path / "partial.ckpt")
    after = state_of(net)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_entries_foreign_to_the_network_are_rejected(tmp_path):
    source = create_model("shufflenet_v2_x0_5")
    entries = [{"name": n, "data": ms.Tensor(p.asnumpy())} for n, p in source.parameters_and_names()]
    entries.append({"name": "features.16.branch_main.0.weight", "data": ms.Tensor(np.zeros((4, 4, 1, 1), np.float32))})
    ms.save_checkpoint(entries, str(tmp_path / "extra.ckpt"))
    with pytest.raises(CheckpointMismatchError, match=r"1 entries are not parameters of this network: features\.16"):
        create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "extra.ckpt"))


def test_ema_without_ema_weights_is_an_error(tmp_path):
    ckpt = save_training_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointMismatchError, match="no EMA weights"):
        create_model("shufflenet_v2_x0_5", checkpoint_path=str(ckpt), ema=True)


def test_missing_and_corrupt_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "nope.ckpt"))
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "bad.ckpt"))


def test_pretrained_weights_come_from_the_local_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download https://.*shufflenet_v2_x0_5-8c841061.ckpt"):
        create_model("shufflenet_v2_x0_5", pretrained=True)
    with pytest.raises(ValueError, match="no released ImageNet weights for shufflenet_v1_g8_10"):
        create_model("shufflenet_v1_g8_10", pretrained=True)

    source = randomize(create_model("shufflenet_v2_x0_5"), seed=9)
    publish_release(monkeypatch, "shufflenet_v2_x0_5", save_training_checkpoint(source, tmp_path / "w.ckpt"), tmp_path)
    net = create_model("shufflenet_v2_x0_5", pretrained=True)
    np.testing.assert_array_equal(run_eval(net, IMAGE), run_eval(source, IMAGE))

    finetune = create_model("shufflenet_v2_x0_5", pretrained=True, num_classes=10)
    params = dict(finetune.parameters_and_names())
    assert params["classifier.weight"].shape == (10, 1024)
    np.testing.assert_array_equal(params["conv_last.0.weight"].asnumpy(),
                                  dict(source.parameters_and_names())["conv_last.0.weight"].asnumpy())


def test_pretrained_and_checkpoint_path_together_are_rejected():
    with pytest.raises(ValueError, match="either pretrained=True or checkpoint_path"):
        create_model("shufflenet_v2_x0_5", pretrained=True, checkpoint_path="x.ckpt")


def test_safetensors_checkpoints_load_too(tmp_path):
    source = randomize(create_model("shufflenet_v2_x0_5"), seed=10)
    ms.save_checkpoint(source, str(tmp_path / "net.safetensors"), format="safetensors")
    net = create_model("shufflenet_v2_x0_5", checkpoint_path=str(tmp_path / "net.safetensors"))
    np.testing.assert_array_equal(run_eval(net, IMAGE), run_eval(source, IMAGE))


def test_a_training_states_step_counters_are_not_taken_for_weights(tmp_path):
    # The train step's skipped-update count and accumulation flag (engine/train_step.py) ride in every epoch
    # checkpoint; validate.py and export.py read such a file too.
    reference = randomize(RefShuffleNetV2(SHUFFLENET_V2_CHANNELS["x0_5"]), seed=8)
    ckpt = save_training_checkpoint(reference, tmp_path / "state.ckpt")
    state = {name: value.asnumpy() for name, value in ms.load_checkpoint(str(ckpt)).items()}
    state.update(skipped_updates=np.array(0, np.int32), window_finite=np.array(1, np.int32))
    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in state.items()], str(ckpt))
    net = create_model("shufflenet_v2_x0_5", checkpoint_path=str(ckpt))
    np.testing.assert_allclose(run_eval(net, IMAGE), run_eval(reference, IMAGE), rtol=1e-5, atol=1e-5)
