"""validate.py, run as a user runs it, on a tiny image folder made here."""

import re

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet import create_model
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from tests.helpers import randomize, save_training_checkpoint

CLASSES = ["apple", "banana", "cherry"]


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """3 classes x 4 PNG images, each of one uniform colour, so that resize and crop leave every pixel
    as it was and the network's input is known exactly."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    colours = {}
    for name in CLASSES:
        (root / "val" / name).mkdir(parents=True)
        for i in range(4):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            Image.new("RGB", (40 + 8 * i, 48), colour).save(root / "val" / name / f"{i}.png")
            colours[(name, i)] = colour
    return root, colours


def test_validate_reports_the_accuracy_of_the_checkpoint(run_cli, image_folder, tmp_path):
    root, colours = image_folder
    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=3), seed=4)
    ms.save_checkpoint(net, str(tmp_path / "net.ckpt"))

    net.set_train(False)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    correct = 0
    for (name, _), colour in colours.items():
        pixel = (np.array(colour) - mean) / std
        x = np.broadcast_to(pixel[None, :, None, None], (1, 3, 32, 32)).astype(np.float32)
        correct += int(net(ms.Tensor(x)).asnumpy().argmax() == CLASSES.index(name))

    result = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"),
                     "--data_dir", str(root), "--num_classes", "3", "--image_resize", "32",
                     "--batch_size", "5")
    assert result.returncode == 0, result.stderr
    match = re.search(r"top-1 ([\d.]+)%  top-5 ([\d.]+)%  loss ([\d.]+)  \((\d+) images", result.stdout)
    assert match, result.stdout
    top1, top5, loss, images = float(match[1]), float(match[2]), float(match[3]), int(match[4])
    assert images == 12
    assert top1 == pytest.approx(100 * correct / 12, abs=0.01)
    assert top5 == 100.0  # 3 classes: the top 5 always hold the label
    assert loss > 0
    assert "Exception ignored" not in result.stderr


def test_validate_rejects_a_checkpoint_of_another_model_with_one_line(run_cli, image_folder, tmp_path):
    root, _ = image_folder
    ms.save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=3), str(tmp_path / "v2.ckpt"))
    result = run_cli("validate.py", "--model", "shufflenet_v1_g3_05", "--ckpt_path", str(tmp_path / "v2.ckpt"),
                     "--data_dir", str(root), "--num_classes", "3", "--image_resize", "32")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "checkpoint does not fit ShuffleNetV1" in last


def test_validate_names_a_missing_data_folder(run_cli, tmp_path):
    result = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--pretrained", "--data_dir",
                     str(tmp_path / "none"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (f"error: data folder not found: {tmp_path / 'none' / 'val'} "
                                                      f"(data_dir {tmp_path / 'none'} is not a folder): check "
                                                      f"--data_dir and --val_split")


def test_validate_refuses_a_folder_whose_classes_do_not_fit_the_model(run_cli, image_folder):
    root, _ = image_folder
    # --val_split "" reads --data_dir itself, here a folder of 3 classes
    ok = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--pretrained", "--data_dir", str(root / "val"),
                 "--val_split", "", "--num_classes", "2")
    assert ok.returncode == 2 and "3 class folders but the model has num_classes=2" in ok.stderr.splitlines()[-1]
    typo = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--pretrained", "--data_dir", str(root),
                   "--val_split", "validation")
    assert typo.returncode == 2
    assert typo.stderr.strip().splitlines()[-1] == (f"error: data folder not found: {root / 'validation'} ({root} "
                                                    f"has no 'validation' folder): check --data_dir and --val_split")


def test_validate_with_overflowing_float16_logits_reports_them_in_one_line(run_cli, image_folder, tmp_path):
    """amp O3 on the CPU: logits beyond float16's range (65504) become Inf; validate.py says so and how to fix it."""
    root, _ = image_folder
    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=3), seed=4)
    net.classifier.weight.set_data(ms.Tensor(net.classifier.weight.asnumpy() * 1e6))  # logits of ~3e5
    ms.save_checkpoint(net, str(tmp_path / "net.ckpt"))
    result = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"),
                     "--data_dir", str(root), "--num_classes", "3", "--image_resize", "32",
                     "--val_amp_level", "O3", "--json", str(tmp_path / "result.json"))
    assert result.returncode == 0, result.stderr
    assert ("warning: 12 of 12 images gave non-finite logits (NaN/Inf): they count as wrong in top-1/top-5 and are "
            "left out of the loss. With val_amp_level O2/O3 this is float16 overflow: on the CPU evaluate in float32 "
            "(val_amp_level O0)"
            in result.stdout.splitlines() + result.stderr.splitlines())
    assert "top-1 0.00%  top-5 0.00%  loss nan" in result.stdout
    assert "RuntimeWarning" not in result.stderr


def test_a_mindcv_training_checkpoint_validates_from_the_command_line(run_cli, tmp_path):
    """MindCV's released files are dumps of the training network: optimizer slots, counters, EMA."""
    folder = tmp_path / "val"
    for i, name in enumerate(["a", "b"]):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (40, 36), (60 * i, 100, 200)).save(folder / name / "0.png")
    source = randomize(create_model("shufflenet_v2_x0_5", num_classes=2), seed=5)
    ckpt = save_training_checkpoint(source, tmp_path / "mindcv.ckpt", with_ema=True)
    result = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", ckpt, "--ema", "--data_dir",
                     tmp_path, "--num_classes", "2", "--image_resize", "32")
    assert result.returncode == 0, result.stderr
    assert re.search(r"top-1 [\d.]+%  top-5 100\.00%  loss [\d.]+  \(2 images", result.stdout), result.stdout
