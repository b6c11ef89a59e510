"""A checkpoint knows how its network was trained to see: infer.py, validate.py and export.py preprocess as
the checkpoint records, an explicit option overrides it with a note, and infer.py takes --config."""

import json

import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet import create_model
from mindcv_shufflenet.cli import eval_preprocessing
from mindcv_shufflenet.models.weights import recorded_preprocessing, save_checkpoint
from tests.helpers import randomize

RECORDED = {"input_size": 32, "crop_pct": 1.0, "interpolation": "bilinear", "channel_order": "RGB",
            "mean": [120.0, 110.0, 100.0], "std": [60.0, 60.0, 60.0]}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A 3-class checkpoint that records a 32x32, uncropped preprocessing, and a folder of images."""
    root = tmp_path_factory.mktemp("recorded")
    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=3), seed=5)
    ckpt = save_checkpoint(net, root / "net.ckpt", model_name="shufflenet_v2_x0_5", class_names=["a", "b", "c"],
                           extra={"preprocessing": RECORDED})
    rng = np.random.default_rng(0)
    for c in "abc":
        (root / "val" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(root / "val" / c / f"{i}.png")
    return root, ckpt


def test_recorded_preprocessing_wins_over_the_models_and_loses_to_an_option(trained):
    _, ckpt = trained
    recorded = recorded_preprocessing(ckpt)
    assert (recorded.input_size, recorded.crop_pct, recorded.mean) == (32, 1.0, (120.0, 110.0, 100.0))
    notes = []
    assert eval_preprocessing("shufflenet_v2_x0_5", str(ckpt), {}, notes.append) == recorded
    chosen = eval_preprocessing("shufflenet_v2_x0_5", str(ckpt), {"image_resize": 64, "crop_pct": 1.0},
                                notes.append)
    assert (chosen.input_size, chosen.crop_pct, chosen.std) == (64, 1.0, (60.0, 60.0, 60.0))
    assert notes == [f"note: --image_resize 64 differs from the 32 that {ckpt} was trained with"]
    model_default = eval_preprocessing("shufflenet_v2_x0_5", None, {})
    assert (model_default.input_size, model_default.crop_pct) == (224, 0.875)


@pytest.mark.slow
def test_infer_uses_the_recorded_preprocessing_and_names_the_model_itself(run_cli, trained, tmp_path):
    root, ckpt = trained
    default = run_cli("infer.py", root / "val", "--ckpt_path", ckpt, "--json", cwd=tmp_path, check=True)
    explicit = run_cli("infer.py", root / "val", "--model", "shufflenet_v2_x0_5", "--ckpt_path", ckpt, "--json",
                       "--image_resize", 32, "--crop_pct", 1.0, cwd=tmp_path, check=True)
    assert default.stdout == explicit.stdout and "note:" not in default.stderr + explicit.stderr
    other = run_cli("infer.py", root / "val", "--ckpt_path", ckpt, "--json", "--image_resize", 64, cwd=tmp_path,
                    check=True)
    assert f"note: --image_resize 64 differs from the 32 that {ckpt} was trained with" in other.stderr
    assert other.stdout != default.stdout
    labels = {top["label"] for line in default.stdout.splitlines() for top in json.loads(line)["top_k"]}
    assert labels == {"a", "b", "c"}


@pytest.mark.slow
def test_infer_takes_a_config_as_validate_does(run_cli, trained, tmp_path):
    root, ckpt = trained
    config = tmp_path / "run.yaml"
    config.write_text(f"model: shufflenet_v2_x0_5\nckpt_path: {ckpt}\nimage_resize: 32\ncrop_pct: 1.0\n"
                      f"mean: [120.0, 110.0, 100.0]\nstd: [60.0, 60.0, 60.0]\n")
    by_config = run_cli("infer.py", root / "val", "--config", config, "--json", cwd=tmp_path, check=True)
    by_record = run_cli("infer.py", root / "val", "--ckpt_path", ckpt, "--json", cwd=tmp_path, check=True)
    assert by_config.stdout == by_record.stdout and "note:" not in by_config.stderr


@pytest.mark.slow
def test_validate_and_export_use_the_recorded_model_and_preprocessing(run_cli, trained, tmp_path):
    root, ckpt = trained
    args = ["--ckpt_path", ckpt, "--data_dir", root, "--num_classes", 3]
    recorded = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", *args, "--json", tmp_path / "a.json",
                       cwd=tmp_path, check=True)
    run_cli("validate.py", "--model", "shufflenet_v2_x0_5", *args, "--image_resize", 32, "--crop_pct", 1.0,
            "--mean", "120,110,100", "--std", "60,60,60", "--json", tmp_path / "b.json", cwd=tmp_path, check=True)
    assert "note:" not in recorded.stderr
    loss = {name: json.loads((tmp_path / f"{name}.json").read_text())["loss"] for name in ("a", "b")}
    assert loss["a"] == loss["b"]
    # no --model, no --num_classes: the checkpoint names its model and its classifier gives the classes
    named = run_cli("validate.py", "--ckpt_path", ckpt, "--data_dir", root, "--json", tmp_path / "c.json",
                    cwd=tmp_path, check=True)
    assert named.stdout.startswith("shufflenet_v2_x0_5: top-1 ")
    assert json.loads((tmp_path / "c.json").read_text())["loss"] == loss["a"]
    exported = run_cli("export.py", "--ckpt_path", ckpt, "--file_name", tmp_path / "net", "--no_check", cwd=tmp_path,
                       check=True)
    assert ("input float32 [batch, 3, 32, 32] (RGB, mean [120.0, 110.0, 100.0], std [60.0, 60.0, 60.0])"
            in exported.stdout)
