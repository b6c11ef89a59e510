"""export.py: MindIR and ONNX with a dynamic batch that match the network; AIR off Ascend (folding, the family
models: unit/test_export.py)."""


import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import create_model
from mindcv_shufflenet.models.weights import save_checkpoint
from tests.helpers import normal_images, run_eval, trained_like

TOLERANCE = 1e-4
SIZE = 64
MEGVII_PAD = [-2.1179, -2.0357, -1.8044]


def test_onnx_export_has_a_dynamic_batch_and_onnxruntime_matches_the_network(run_cli, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    net = trained_like("shufflenet_v2_x0_5", seed=3, pool_padding="symmetric", stem_pad_value=MEGVII_PAD)
    save_checkpoint(net, tmp_path / "net.ckpt", model_name="shufflenet_v2_x0_5")
    result = run_cli("export.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", tmp_path / "net.ckpt",
                     "--file_format", "onnx", "--file_name", tmp_path / "net", "--image_size", SIZE)
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'net.onnx'}: input float32 [batch, 3, {SIZE}, {SIZE}]" in result.stdout
    assert "56 BatchNorms folded; onnxruntime vs the network: max abs diff" in result.stdout
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "image" and isinstance(session.get_inputs()[0].shape[0], str)
    for batch in (1, 3):
        x = normal_images(batch, 10 + batch)
        got = session.run(None, {"image": x})[0]
        assert got.shape == (batch, 10)
        assert np.abs(got - run_eval(net, x)).max() <= TOLERANCE


def test_mindir_export_reloads_with_any_batch_and_matches_the_network(run_cli, tmp_path):
    net = trained_like("shufflenet_v1_g3_05", seed=4, pool_padding="symmetric")
    save_checkpoint(net, tmp_path / "v1.ckpt", model_name="shufflenet_v1_g3_05")
    result = run_cli("export.py", "--model", "shufflenet_v1_g3_05", "--ckpt_path", str(tmp_path / "v1.ckpt"),
                     "--file_name", str(tmp_path / "v1"), "--image_size", str(SIZE))
    assert result.returncode == 0, result.stderr
    assert "49 BatchNorms folded; MindSpore (reloaded MindIR) vs the network" in result.stdout
    graph = nn.GraphCell(ms.load(str(tmp_path / "v1.mindir")))
    for batch in (1, 3):
        x = normal_images(batch, 20 + batch)
        got = graph(ms.Tensor(x)).asnumpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - run_eval(net, x)).max() <= TOLERANCE


def test_air_export_off_ascend_is_a_one_line_error(run_cli, tmp_path):
    save_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "net.ckpt")
    result = run_cli("export.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"),
                     "--file_format", "AIR", "--batch_size", "1", "--file_name", str(tmp_path / "net"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: AIR export needs an Ascend device (running on CPU): export MINDIR or ONNX here, or run on an "
        "Ascend machine with --device Ascend")
    assert not list(tmp_path.glob("net.air*"))
