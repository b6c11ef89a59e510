"""scripts/convert_weights.py converts torchvision's and the official weights into checkpoints that record what
the weights need, and refuses bad input in one line (the conversions themselves: unit/test_convert.py)."""

import numpy as np
import pytest

from mindcv_shufflenet import create_model
from mindcv_shufflenet.models import SHUFFLENET_V2_CHANNELS
from tests.helpers import (
    DATA,
    SIZE,
    TOLERANCE,
    max_diff,
    megvii_reference,
    normalize,
    rgb_images,
    run_eval,
    torchvision_reference,
)
from torch_layout_reference import torch_state


def test_converting_from_the_command_line_records_what_the_weights_need(run_cli, tmp_path):
    x = np.random.default_rng(2).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    ref = torchvision_reference(SHUFFLENET_V2_CHANNELS["x1_0"], 1000, seed=6, images=x)
    np.savez(tmp_path / "tv.npz", **torch_state(ref))
    result = run_cli("scripts/convert_weights.py", "--from", "torchvision", "--model", "shufflenet_v2_x1_0",
                     tmp_path / "tv.npz", tmp_path / "tv.ckpt")
    assert result.returncode == 0, result.stderr
    assert "recorded pool_padding='symmetric', proj_channels='half', classifier_bias=True" in result.stdout
    net = create_model("shufflenet_v2_x1_0", checkpoint_path=str(tmp_path / "tv.ckpt"))  # no options needed
    assert net.options["proj_channels"] == "half" and net.classifier.bias is not None
    assert max_diff(run_eval(net, x), run_eval(ref, x)) <= TOLERANCE
    with pytest.raises(ValueError, match="was saved with pool_padding='symmetric', but pool_padding='same' was passed"):
        create_model("shufflenet_v2_x1_0", checkpoint_path=str(tmp_path / "tv.ckpt"), pool_padding="same")


def test_official_weights_convert_from_the_command_line(run_cli, tmp_path):
    rgb = rgb_images((1, 3, SIZE, SIZE), seed=8)
    ref = megvii_reference("shufflenet_v1_g3_05", seed=7, bgr_images=rgb[:, ::-1].copy())
    np.savez(tmp_path / "official.npz", **{f"module.{k}": v for k, v in torch_state(ref).items()})
    result = run_cli("scripts/convert_weights.py", "--from", "megvii", "--model", "shufflenet_v1_g3_05",
                     tmp_path / "official.npz", tmp_path / "official.safetensors")
    assert result.returncode == 0, result.stderr
    net = create_model("shufflenet_v1_g3_05", checkpoint_path=str(tmp_path / "official.safetensors"))
    assert max_diff(run_eval(net, normalize(rgb)), run_eval(ref, rgb[:, ::-1].copy())) <= TOLERANCE


@pytest.mark.parametrize("args, message", [
    (["--from", "torchvision", "--model", "shufflenet_v2_x0_5", "FIXTURE", "out.ckpt"],
     "error: these torchvision weights are a ShuffleNetV2 with channels (8, 20, 44, 90, 64), not shufflenet_v2_x0_5"),
    (["--from", "torchvision", "--model", "shufflenet_v1_g3_05", "FIXTURE", "out.ckpt"],
     "error: torchvision has no ShuffleNet V1: shufflenet_v1_g3_05 cannot come from torchvision"),
    (["--from", "torchvision", "--model", "shufflenet_v2_x0_5", "missing.pth", "out.ckpt"],
     "error: weights file not found: missing.pth"),
    (["--from", "torchvision", "--model", "shufflenet_v2_x0_5", "FIXTURE", "out.pth"],
     "error: output out.pth must end in .ckpt or .safetensors"),
])
def test_converter_command_line_errors_are_one_line(run_cli, args, message, tmp_path):
    args = [str(DATA / "torchvision_shufflenet_v2_tiny.npz") if a == "FIXTURE" else a for a in args]
    result = run_cli("scripts/convert_weights.py", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message
