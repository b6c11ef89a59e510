"""A network trained on BGR input (as Megvii's ShuffleNetV2+ and V2.Large weights, which take BGR) goes
through export.py and --model_file on BGR input: the file records the channel order, validate.py and
infer.py --model_file give the checkpoint's figures and classes, and scripts/deploy_benchmark.py accuracy
evaluates, exports and calibrates it on BGR input too.

The checkpoint is a 3-class ShuffleNet V2 0.5x with random weights whose record says it was trained on
32x32 BGR images normalized with ImageNet's statistics in B, G, R order; the images are the session's
digits, tinted so that their channels differ (the digits themselves are grey: R = G = B)."""

import json

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet import create_model
from mindcv_shufflenet.models.weights import save_checkpoint
from tests.helpers import load_script, randomize, run_eval

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MEAN_BGR, STD_BGR = [103.53, 116.28, 123.675], [57.375, 57.12, 58.395]
RECORD = {"input_size": 32, "crop_pct": 1.0, "interpolation": "bilinear", "channel_order": "BGR",
          "mean": MEAN_BGR, "std": STD_BGR}
CLASSES = ("3", "5", "8")


def tint(path, out):
    """A grey digit in colour: ink red, paper blue."""
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    rgb = np.stack([grey, 0.5 * grey, 255.0 - grey], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(out)


@pytest.fixture(scope="session")
def bgr(run_cli, images, tmp_path_factory):
    """(folder with val/ and train/ of tinted digits, the BGR checkpoint, its ONNX and MindIR exports)."""
    root = tmp_path_factory.mktemp("bgr")
    for split, count in (("val", 4), ("train", 3)):
        for label in CLASSES:
            (root / split / label).mkdir(parents=True)
            for source in sorted((images / "val" / label).iterdir())[:count]:
                tint(source, root / split / label / source.name)
    net = randomize(create_model("shufflenet_v2_x0_5", num_classes=len(CLASSES)), seed=3)
    # logits well apart (a random network's are close to uniform), so that a loss tells inputs apart
    net.classifier.weight.set_data(ms.Tensor(net.classifier.weight.asnumpy() * 30))
    ckpt = save_checkpoint(net, root / "bgr.ckpt", model_name="shufflenet_v2_x0_5", class_names=list(CLASSES),
                           extra={"preprocessing": RECORD})
    recipe = root / "recipe.yaml"  # sets no mean, std: MindCV's defaults must not replace the recorded ones
    recipe.write_text("model: shufflenet_v2_x0_5\nimage_resize: 32\n")
    files = {}
    # ONNX: no preprocessing options and no --config, the checkpoint's record decides; MindIR: with a recipe
    for file_format, options in (("ONNX", []), ("MINDIR", ["--config", recipe])):
        proc = run_cli("export.py", "--ckpt_path", ckpt, "--file_format", file_format, "--file_name", root / "bgr",
                       *options, cwd=root, check=True)
        assert "note:" not in proc.stderr, proc.stderr
        assert f"(BGR, mean {MEAN_BGR}, std {STD_BGR})" in proc.stdout
        files[file_format] = root / f"bgr.{file_format.lower()}"
    return root, ckpt, files


def preprocessed(folder, channel_order):
    from mindcv_shufflenet.data.transforms import eval_transforms
    from mindcv_shufflenet.deploy import find_images, load_image

    transforms = eval_transforms(32, 1.0, "bilinear", MEAN_BGR, STD_BGR, channel_order)
    return np.stack([load_image(path, transforms) for path in find_images([folder])])


def labels(folder):
    from mindcv_shufflenet.deploy import find_images

    return np.array([CLASSES.index(path.parent.name) for path in find_images([folder])])


def cross_entropy(logits, targets):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


@pytest.mark.slow
def test_the_exported_files_record_bgr_and_compute_the_network_on_bgr_input(bgr):
    from mindcv_shufflenet.deploy import load_exported

    root, ckpt, files = bgr
    net = create_model("shufflenet_v2_x0_5", num_classes=len(CLASSES), checkpoint_path=str(ckpt))
    x_bgr, x_rgb = preprocessed(root / "val", "BGR"), preprocessed(root / "val", "RGB")
    expected = run_eval(net, x_bgr)
    spread = np.abs(expected).max()
    for path in files.values():
        model = load_exported(path)
        info = model.info
        assert (info.channel_order, info.image_size, info.crop_pct) == ("BGR", 32, 1.0)
        np.testing.assert_allclose(info.mean, MEAN_BGR)
        np.testing.assert_allclose(info.std, STD_BGR)
        assert info.class_names == CLASSES
        np.testing.assert_allclose(model(x_bgr), expected, atol=1e-4 * spread)
        # the same file fed RGB computes something else: the channel order matters for these images
        assert np.abs(model(x_rgb) - expected).max() > 0.05 * spread


@pytest.mark.slow
def test_validate_model_file_evaluates_bgr_files_as_the_checkpoint(run_cli, bgr, tmp_path):
    root, ckpt, files = bgr
    run_cli("validate.py", "--ckpt_path", ckpt, "--model", "shufflenet_v2_x0_5", "--data_dir", root, "--json",
            tmp_path / "ckpt.json", cwd=tmp_path, check=True)
    reference = json.loads((tmp_path / "ckpt.json").read_text())
    assert reference["images"] == 12
    # the checkpoint itself is evaluated on BGR input: its loss is the network's on BGR images, not on RGB ones
    net = create_model("shufflenet_v2_x0_5", num_classes=len(CLASSES), checkpoint_path=str(ckpt))
    losses = {order: cross_entropy(run_eval(net, preprocessed(root / "val", order)), labels(root / "val"))
              for order in ("BGR", "RGB")}
    assert reference["loss"] == pytest.approx(losses["BGR"], rel=1e-4)
    assert abs(reference["loss"] - losses["RGB"]) > 1e-2 * reference["loss"], losses  # 100x the tolerance above
    for file_format, path in files.items():
        proc = run_cli("validate.py", "--model_file", path, "--data_dir", root, "--json", tmp_path / "file.json",
                       cwd=tmp_path, check=True)
        got = json.loads((tmp_path / "file.json").read_text())
        assert "instead" not in proc.stderr and got["images"] == 12, proc.stderr  # no option overrode the record
        assert got["top1"] == reference["top1"] and got["top5"] == reference["top5"], file_format
        assert got["loss"] == pytest.approx(reference["loss"], rel=1e-4, abs=1e-4), file_format


@pytest.mark.slow
def test_infer_model_file_gives_the_checkpoints_predictions_on_bgr_input(run_cli, bgr, tmp_path):
    root, ckpt, files = bgr

    def predictions(*args):
        proc = run_cli("infer.py", root / "val", "--json", "--top_k", 3, *args, cwd=tmp_path, check=True)
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    want = predictions("--ckpt_path", ckpt)
    assert len(want) == 12
    for path in files.values():
        got = predictions("--model_file", path)
        assert [g["image"] for g in got] == [w["image"] for w in want]
        for g, w in zip(got, want):
            assert g["top_k"][0]["label"] == w["top_k"][0]["label"], (g, w)
            np.testing.assert_allclose([t["probability"] for t in g["top_k"]],
                                       [t["probability"] for t in w["top_k"]], atol=1e-4)


@pytest.mark.slow
def test_deploy_benchmark_accuracy_uses_the_checkpoints_record(run_cli, bgr, tmp_path):
    """The accuracy command's checkpoint row is validate.py's figure (BGR input), and the float ONNX file it
    writes (and calibrates INT8 from) records BGR."""
    from mindcv_shufflenet.deploy import load_exported

    root, ckpt, _ = bgr
    run_cli("validate.py", "--ckpt_path", ckpt, "--model", "shufflenet_v2_x0_5", "--data_dir", root, "--json",
            tmp_path / "ckpt.json", cwd=tmp_path, check=True)
    reference = json.loads((tmp_path / "ckpt.json").read_text())
    run_cli("scripts/deploy_benchmark.py", "accuracy", "--ckpt_path", ckpt, "--data_dir", root, "--calib_images", 6,
            "--methods", "minmax", "--seeds", 1, "--out", tmp_path / "out", cwd=tmp_path, check=True)
    result = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert result["model"] == "shufflenet_v2_x0_5" and result["preprocessing"] == RECORD
    checkpoint_row, float_row = result["rows"][:2]
    assert (checkpoint_row["top1"], checkpoint_row["images"]) == (reference["top1"], 12)
    assert checkpoint_row["loss"] == pytest.approx(reference["loss"], rel=1e-4)
    assert float_row["top1"] == reference["top1"]
    assert load_exported(tmp_path / "out" / "float.onnx").info.channel_order == "BGR"


def test_deploy_benchmark_accuracy_takes_preprocessing_as_validate_does(tmp_path):
    """An option, else the keys --config's YAML sets, else the checkpoint's record, else the model's."""
    bench = load_script("scripts/deploy_benchmark.py")
    net = create_model("shufflenet_v2_x0_5", num_classes=3)
    ckpt = save_checkpoint(net, tmp_path / "bgr.ckpt", model_name="shufflenet_v2_x0_5", extra={"preprocessing": RECORD})
    plain = save_checkpoint(net, tmp_path / "plain.ckpt")  # no record, no model name
    config = tmp_path / "recipe.yaml"
    config.write_text("model: shufflenet_v2_x0_5\nimage_resize: 48\ncrop_pct: 0.875\n")

    def chosen(*argv):
        args = bench.parse_args(["accuracy", "--data_dir", str(tmp_path), *map(str, argv)])
        return bench.accuracy_preprocessing(args)

    model, pre = chosen("--ckpt_path", ckpt)
    assert model == "shufflenet_v2_x0_5" and pre.channel_order == "BGR" and pre.input_size == 32
    assert (list(pre.mean), list(pre.std), pre.crop_pct) == (MEAN_BGR, STD_BGR, 1.0)
    _, pre = chosen("--ckpt_path", ckpt, "--config", config)  # the YAML's keys over the record, the rest recorded
    assert (pre.input_size, pre.crop_pct, pre.channel_order, list(pre.mean)) == (48, 0.875, "BGR", MEAN_BGR)
    _, pre = chosen("--ckpt_path", ckpt, "--config", config, "--image_resize", 64, "--mean", "1,2,3")
    assert (pre.input_size, pre.crop_pct, pre.mean, list(pre.std)) == (64, 0.875, (1.0, 2.0, 3.0), STD_BGR)
    model, pre = chosen("--ckpt_path", plain, "--model", "shufflenet_v2_x0_5")  # no record: the model's metadata
    assert (pre.input_size, pre.crop_pct, pre.channel_order) == (224, 0.875, "RGB")
    with pytest.raises(ValueError, match="names no model: give --model NAME"):
        chosen("--ckpt_path", plain)
