"""Exported models evaluated like checkpoints (validate.py / infer.py --model_file), and INT8 ONNX export (in
process: unit/test_deploy.py).

The main fixture trains the digits demo model for 3 epochs (about a minute) with train.py, so that the
exported files are those of a trained network on real images (scikit-learn's handwritten digits)."""

import json
import sys

import numpy as np
import pytest

from mindcv_shufflenet.deploy import SATURATION_FREE_INT8, ExportInfo, load_exported
from tests.helpers import DEMO

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def assert_one_line_error(proc, expected):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, last
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def validate_json(run_cli, tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    proc = run_cli("validate.py", *args, "--json", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    root = tmp_path_factory.mktemp("deploy") / "digits"
    write_digits_imagefolder(root)
    return root


@pytest.fixture(scope="session")
def trained(run_cli, digits, tmp_path_factory):
    """The demo recipe (ShuffleNet V2 0.5x, 32x32 digits) trained for 3 epochs; its best checkpoint."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", digits, "--ckpt_save_dir", run_dir, "--epoch_size", 3,
                   "--decay_epochs", 2, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "shufflenet_v2_x0_5-best.ckpt"


@pytest.fixture(scope="session")
def exported(run_cli, trained, tmp_path_factory):
    """The trained model exported as float ONNX and float MindIR by export.py."""
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for file_format in ("ONNX", "MINDIR"):
        proc = run_cli("export.py", "--config", DEMO, "--ckpt_path", trained, "--file_format", file_format,
                       "--file_name", out / "digits")
        assert proc.returncode == 0, proc.stderr[-3000:]
        files[file_format] = out / f"digits.{file_format.lower()}"
        assert files[file_format].is_file()
    return files


# ------------------------------------------------------------------------------------------------ float files

@pytest.mark.slow
def test_exported_files_record_the_model_and_its_preprocessing(exported):
    for path in exported.values():
        model = load_exported(path)
        assert model.info == ExportInfo(model="shufflenet_v2_x0_5", num_classes=10, image_size=32,
                                        mean=model.info.mean, std=model.info.std, crop_pct=1.0,
                                        interpolation="bilinear", channel_order="RGB",
                                        class_names=tuple(str(d) for d in range(10)))
        np.testing.assert_allclose(model.info.mean, [123.675, 116.28, 103.53])
        np.testing.assert_allclose(model.info.std, [58.395, 57.12, 57.375])
        assert model.input_shape == (3, 32, 32) and model.batch_size is None and model.num_classes == 10


@pytest.mark.slow
def test_validate_model_file_reproduces_the_checkpoint(run_cli, trained, exported, digits, tmp_path):
    reference, _ = validate_json(run_cli, tmp_path, "ckpt", "--config", DEMO, "--ckpt_path", trained, "--data_dir",
                                 digits)
    assert reference["images"] == 359 and reference["top1"] > 50  # a trained network, not chance (10%)
    for file_format, path in exported.items():
        # no --config: the model name, image size, crop_pct, mean and std come from the file
        got, stdout = validate_json(run_cli, tmp_path, file_format, "--model_file", path, "--data_dir", digits)
        assert stdout.startswith(f"{path.name} (shufflenet_v2_x0_5, {file_format} float32): top-1 ")
        assert got["images"] == 359 and got["format"] == file_format and got["quantization"] is None
        assert got["top1"] == reference["top1"] and got["top5"] == reference["top5"]
        assert got["loss"] == pytest.approx(reference["loss"], abs=1e-4)


@pytest.mark.slow
def test_infer_model_file_gives_the_checkpoints_classes(run_cli, trained, exported, digits):
    image = sorted((digits / "val" / "7").iterdir())[0]
    expected = run_cli("infer.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", trained, "--image_resize", 32,
                       "--crop_pct", 1.0, "--json", "--top_k", 3, image)
    assert expected.returncode == 0, expected.stderr[-2000:]
    want = json.loads(expected.stdout.strip().splitlines()[-1])["top_k"]
    for path in exported.values():
        proc = run_cli("infer.py", "--model_file", path, "--json", "--top_k", 3, image)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])["top_k"]
        assert [g["label"] for g in got] == [w["label"] for w in want]  # names recorded in the file
        np.testing.assert_allclose([g["probability"] for g in got], [w["probability"] for w in want], atol=1e-5)


@pytest.mark.slow
def test_model_files_that_do_not_fit_are_refused_with_one_line(run_cli, exported, digits, tmp_path):
    onnx_file = exported["ONNX"]
    assert_one_line_error(run_cli("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--image_resize", 64),
                          f"{onnx_file} takes 3x32x32 images, but the preprocessing gives 64x64: set "
                          f"--image_resize 32")
    assert_one_line_error(run_cli("validate.py", "--model_file", exported["MINDIR"], "--data_dir", digits,
                                  "--num_classes", 12), "outputs 10 classes, not --num_classes 12")
    many = tmp_path / "eleven"
    a_digit = sorted((digits / "val" / "1").iterdir())[0].read_bytes()
    for label in range(11):
        (many / "val" / f"c{label:02d}").mkdir(parents=True)
        (many / "val" / f"c{label:02d}" / "a.png").write_bytes(a_digit)
    assert_one_line_error(run_cli("validate.py", "--model_file", onnx_file, "--data_dir", many),
                          f"has 11 class folders but {onnx_file} outputs 10 classes")
    assert_one_line_error(run_cli("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--model",
                                  "shufflenet_v2_x1_0"), "was exported from shufflenet_v2_x0_5, not shufflenet_v2_x1_0")
    assert_one_line_error(run_cli("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--ckpt_path",
                                  "x.ckpt"), "give either --model_file or a checkpoint")
    given = run_cli("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--crop_pct", 0.875)
    assert given.returncode == 0, given.stderr[-2000:]
    assert f"warning: {onnx_file} records crop_pct 1.0; using the crop_pct given instead" in given.stderr
    not_a_model = tmp_path / "notes.onnx"
    not_a_model.write_text("not a model\n")
    assert_one_line_error(run_cli("validate.py", "--model_file", not_a_model, "--data_dir", digits),
                          f"{not_a_model} is not an ONNX model onnxruntime can load")
    assert_one_line_error(run_cli("infer.py", "--model_file", not_a_model, sorted((digits / "val" / "1").iterdir())[0]),
                          f"{not_a_model} is not an ONNX model onnxruntime can load")


# ---------------------------------------------------------------------------------------------------- INT8

def held_out(digits):
    """The digits' validation images, preprocessed as validate.py does for the demo recipe, and their labels."""
    from mindcv_shufflenet.data.transforms import eval_transforms
    from mindcv_shufflenet.deploy import find_images, load_image

    transforms = eval_transforms(32, 1.0)
    paths = find_images([digits / "val"])
    return np.stack([load_image(p, transforms) for p in paths]), np.array([int(p.parent.name) for p in paths])


def export_int8(run_cli, checkpoint, digits, path, *options):
    proc = run_cli("export.py", "--config", DEMO, "--ckpt_path", checkpoint, "--quantize", "int8", "--calib_dir",
                   digits / "train", "--calib_images", 200, "--file_name", path, *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="session")
def int8(run_cli, trained, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8") / "digits-int8.onnx"
    return path, export_int8(run_cli, trained, digits, path)


def assert_agrees_with_float(float_file, int8_file, digits, min_agreement):
    """Top-1 agreement on the held-out digits, and every image's largest logit error bounded by a small part
    of that image's float logit spread (max - min)."""
    from mindcv_shufflenet.deploy.quantize import compare_logits

    x, labels = held_out(digits)
    float_logits, int8_logits = load_exported(float_file)(x), load_exported(int8_file)(x)
    agreement = compare_logits(float_logits, int8_logits)
    assert agreement.top1_agreement >= min_agreement, agreement
    spread = float_logits.max(axis=1) - float_logits.min(axis=1)
    assert np.max(np.abs(int8_logits - float_logits).max(axis=1) / spread) <= 0.2, agreement
    float_top1, int8_top1 = (100 * (logits.argmax(1) == labels).mean() for logits in (float_logits, int8_logits))
    assert abs(int8_top1 - float_top1) <= 2.0, (float_top1, int8_top1)


@pytest.mark.slow
def test_int8_export_is_per_channel_qdq_at_opset_17(int8):
    path, stdout = int8
    assert stdout.startswith(f"{path}: INT8 (int8 static QDQ, per-channel int8 (7-bit range) weights, uint8 "
                             f"activations, float Gemm outputs, minmax calibration on 200 images from ")
    assert "INT8 vs float on the 200 calibration images: top-1 agreement" in stdout
    model = onnx.load(str(path))
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert len(convs) == 56 and not [node for node in model.graph.node if node.op_type == "BatchNormalization"]
    for conv in convs:
        weights = producers[conv.input[1]]
        assert weights.op_type == "DequantizeLinear" and producers[conv.input[0]].op_type == "DequantizeLinear"
        weight, scale = initializers[weights.input[0]], initializers[weights.input[1]]
        assert weight.data_type == onnx.TensorProto.INT8
        # 7-bit range: u8 x s8 pair sums stay within int16, so onnxruntime cannot saturate on AVX2 without VNNI
        assert np.abs(onnx.numpy_helper.to_array(weight)).max() <= SATURATION_FREE_INT8
        assert list(scale.dims) == [weight.dims[0]] and weight.dims[0] > 1  # one scale per output channel
    assert producers["logits"].op_type == "Gemm"  # the logits are left in float
    info = load_exported(path).info
    assert (info.model, info.num_classes, info.image_size, info.crop_pct) == ("shufflenet_v2_x0_5", 10, 32, 1.0)
    assert info.quantization == ("int8 static QDQ, per-channel int8 (7-bit range) weights, uint8 activations, "
                                 "float Gemm outputs, minmax calibration on 200 images")


@pytest.mark.slow
def test_int8_v2_agrees_with_float_on_held_out_images(int8, exported, digits):
    assert_agrees_with_float(exported["ONNX"], int8[0], digits, min_agreement=97.0)


@pytest.mark.slow
def test_validate_model_file_reports_the_int8_accuracy(run_cli, int8, digits, tmp_path):
    path = int8[0]
    x, labels = held_out(digits)
    expected = 100 * (load_exported(path)(x).argmax(1) == labels).mean()
    got, stdout = validate_json(run_cli, tmp_path, "int8", "--model_file", path, "--data_dir", digits)
    assert stdout.startswith(f"{path.name} (shufflenet_v2_x0_5, ONNX INT8): top-1 ")
    assert got["quantization"].startswith("int8 static QDQ") and got["top1"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_int8_v1_agrees_with_float_on_held_out_images(run_cli, digits, tmp_path):
    """ShuffleNet V1 (g3, 0.5x: grouped 1x1 convs, channel shuffle, average-pool shortcuts) trained on the
    digits for 4 epochs, exported in float and INT8."""
    run_dir = tmp_path / "run"
    proc = run_cli("train.py", "--config", DEMO, "--model", "shufflenet_v1_g3_05", "--data_dir", digits,
                   "--ckpt_save_dir", run_dir, "--epoch_size", 4, "--decay_epochs", 3, "--lr", 0.02, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = run_dir / "shufflenet_v1_g3_05-best.ckpt"
    proc = run_cli("export.py", "--config", DEMO, "--model", "shufflenet_v1_g3_05", "--ckpt_path", checkpoint,
                   "--file_format", "ONNX", "--file_name", tmp_path / "v1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    export_int8(run_cli, checkpoint, digits, tmp_path / "v1-int8", "--model", "shufflenet_v1_g3_05")
    assert_agrees_with_float(tmp_path / "v1.onnx", tmp_path / "v1-int8.onnx", digits, min_agreement=95.0)


@pytest.mark.slow
def test_export_refuses_bad_int8_options_with_one_line(run_cli, tmp_path):
    base = ["--model", "shufflenet_v2_x0_5", "--pretrained"]
    assert_one_line_error(run_cli("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path / "missing"),
                          f"calibration folder not found: {tmp_path / 'missing'}: give --calib_dir a folder of images")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path / "empty"),
                          f"no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff) under {tmp_path / 'empty'}")
    assert_one_line_error(run_cli("export.py", *base, "--quantize", "int8"),
                          "--quantize int8 needs calibration images")
    assert_one_line_error(run_cli("export.py", *base, "--calib_dir", tmp_path),
                          "--calib_dir is for INT8 export")
    assert_one_line_error(run_cli("export.py", *base, "--weight_bits", 8),
                          "--weight_bits is for INT8 export")
    assert_one_line_error(run_cli("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path, "--file_format",
                                  "MINDIR"), "--quantize int8 writes ONNX, not MINDIR")


# ------------------------------------------------------------------------------------------- benchmark script

@pytest.mark.slow
def test_deploy_benchmark_speed_quick_run_writes_ratios_to_the_float_file(run_cli, tmp_path):
    import importlib.util

    torch = all(importlib.util.find_spec(name) for name in ("torch", "torchvision"))
    proc = run_cli("scripts/deploy_benchmark.py", "speed", "--model", "shufflenet_v2_x0_5", "--image_size", 32,
                   "--batches", "1,2", "--rounds", 2, "--seconds", 0.1, "--threads", 1, "--variants",
                   "float,qdq,qdq@basic,torchvision-int8", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    rows = {(row["file"], row["batch"]): row for row in result["rows"]}
    names = ("float", "qdq", "qdq@basic") + (("torchvision-int8",) if torch else ())
    assert set(rows) == {(name, batch) for name in names for batch in (1, 2)}
    if not torch:  # torchvision's model is skipped with a note (in the table too)
        assert result["skipped"] == [f"torchvision-int8 skipped: torch and torchvision not installed in "
                                     f"{sys.executable} (run from a separate environment with PyTorch, see "
                                     f"docs/speed.md)"]
        assert f"note: {result['skipped'][0]}" in (tmp_path / "speed.md").read_text()
    for (_, batch), row in rows.items():
        assert len(row["samples_img_per_s"]) == 2 and row["img_per_s"] > 0
        base = rows[("float", batch)]["img_per_s"]
        assert row["speedup"] == pytest.approx(row["img_per_s"] / base)
    assert rows[("qdq", 1)]["size_mb"] == rows[("qdq@basic", 1)]["size_mb"] < rows[("float", 1)]["size_mb"]
    assert result["threads"] == 1 and len(result["load_before"]) == 3
    assert "| qdq | 1 |" in (tmp_path / "speed.md").read_text()
    assert not list(tmp_path.glob("*.onnx"))  # the scratch model files are not left in --out
