"""export.py: BatchNorm folded, MindIR and ONNX with a dynamic batch that match the network; AIR off Ascend."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from mindcv_shufflenet import create_model
from mindcv_shufflenet.deploy import export_friendly_pools
from mindcv_shufflenet.models import fold_batchnorm
from mindcv_shufflenet.models.weights import save_checkpoint
from conftest import randomize, run_eval
from torch_layout_reference import calibrate

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
SIZE = 64
MEGVII_PAD = [-2.1179, -2.0357, -1.8044]


def images(batch, seed):
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def trained_like(model, seed, **options):
    """A network with random weights whose every layer matters (BatchNorm statistics measured)."""
    net = randomize(create_model(model, num_classes=10, **options), seed=seed)
    return calibrate(net, images(4, seed + 100), seed=seed)


def run_export(*args):
    return subprocess.run([sys.executable, "export.py", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize("model, options", [
    ("shufflenet_v2_x0_5", {"pool_padding": "symmetric", "proj_channels": "half", "classifier_bias": True}),
    ("shufflenet_v1_g3_05", {"pool_padding": "symmetric", "stem_pad_value": MEGVII_PAD}),
])
def test_folding_batchnorm_and_rewriting_pools_keeps_the_outputs(model, options):
    net = trained_like(model, seed=1, **options)
    x = images(3, 2)
    before = run_eval(net, x)
    assert fold_batchnorm(net) == (56 if model.startswith("shufflenet_v2") else 49)
    replaced = export_friendly_pools(net)
    assert not [name for name, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]
    assert replaced == (1 if model.startswith("shufflenet_v2") else 4)  # the stem pool (+ V1's 3 shortcut pools)
    assert np.abs(run_eval(net, x) - before).max() <= TOLERANCE


def test_onnx_export_has_a_dynamic_batch_and_onnxruntime_matches_the_network(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    net = trained_like("shufflenet_v2_x0_5", seed=3, pool_padding="symmetric", stem_pad_value=MEGVII_PAD)
    save_checkpoint(net, tmp_path / "net.ckpt", model_name="shufflenet_v2_x0_5")
    result = run_export("--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"), "--file_format",
                        "onnx", "--file_name", str(tmp_path / "net"), "--image_size", str(SIZE))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'net.onnx'}: input float32 [batch, 3, {SIZE}, {SIZE}]" in result.stdout
    assert "56 BatchNorms folded; onnxruntime vs the network: max abs diff" in result.stdout
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "image" and isinstance(session.get_inputs()[0].shape[0], str)
    for batch in (1, 3):
        x = images(batch, 10 + batch)
        got = session.run(None, {"image": x})[0]
        assert got.shape == (batch, 10)
        assert np.abs(got - run_eval(net, x)).max() <= TOLERANCE


def test_mindir_export_reloads_with_any_batch_and_matches_the_network(tmp_path):
    net = trained_like("shufflenet_v1_g3_05", seed=4, pool_padding="symmetric")
    save_checkpoint(net, tmp_path / "v1.ckpt", model_name="shufflenet_v1_g3_05")
    result = run_export("--model", "shufflenet_v1_g3_05", "--ckpt_path", str(tmp_path / "v1.ckpt"),
                        "--file_name", str(tmp_path / "v1"), "--image_size", str(SIZE))
    assert result.returncode == 0, result.stderr
    assert "49 BatchNorms folded; MindSpore (reloaded MindIR) vs the network" in result.stdout
    graph = nn.GraphCell(ms.load(str(tmp_path / "v1.mindir")))
    for batch in (1, 3):
        x = images(batch, 20 + batch)
        got = graph(ms.Tensor(x)).asnumpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - run_eval(net, x)).max() <= TOLERANCE


def test_air_export_off_ascend_is_a_one_line_error(tmp_path):
    save_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "net.ckpt")
    result = run_export("--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"),
                        "--file_format", "AIR", "--batch_size", "1", "--file_name", str(tmp_path / "net"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: AIR export needs an Ascend device (running on CPU): export MINDIR or ONNX here, or run on an "
        "Ascend machine with --device Ascend")
    assert not list(tmp_path.glob("net.air*"))


@pytest.mark.parametrize("family", ["v2_plus", "large"])
def test_the_family_models_export_with_se_hard_swish_and_one_output(family, tmp_path):
    """ShuffleNetV2+ (SE, hard-swish, 5x5 / 7x7 depthwise) and V2.Large (auxiliary heads, which eval mode
    leaves out; a converted network's input offset) at reduced widths: ONNX with BatchNorm folded."""
    pytest.importorskip("onnxruntime")
    from mindcv_shufflenet.deploy import export_model
    from mindcv_shufflenet.models import ShuffleNetV2Large, ShuffleNetV2Plus

    if family == "v2_plus":
        net = ShuffleNetV2Plus((8, 16, 32, 48, 64, 96), num_classes=10)
    else:
        net = ShuffleNetV2Large((8, 8, 16, 32, 64, 128, 256, 64), "large", num_classes=10, stage_repeats=(2, 2, 3, 2),
                                groups=4, aux_channels=(16, 32, 48), input_offset=(SIZE, SIZE))
    net = calibrate(randomize(net, seed=4), images(4, 5), seed=4)
    logit_size = max(1.0, float(np.abs(run_eval(net, images(2, 6))).max()))
    result = export_model(net, tmp_path / family, "ONNX", image_size=SIZE)
    assert result.folded_batchnorms > 40 and result.checked_with == "onnxruntime"
    # Relative to the logits' size: V2+'s logits reach ~6 here, and float32 sums in another order (onnxruntime
    # on an AVX-512 host, oneDNN limited to AVX2) differ by ~3e-5 of that.
    assert result.max_abs_diff <= TOLERANCE * logit_size
    import onnxruntime

    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    outputs = session.get_outputs()
    assert len(outputs) == 1 and outputs[0].shape[1:] == [10]  # one output: no auxiliary logits
    batch = images(3, 6)
    assert session.run(None, {session.get_inputs()[0].name: batch})[0].shape == (3, 10)  # a dynamic batch
