"""Exported models evaluated like checkpoints (validate.py / infer.py --model_file), and INT8 ONNX export.

The main fixture trains the digits demo model for 3 epochs (about a minute) with train.py, so that the
exported files are those of a trained network on real images (scikit-learn's handwritten digits)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet.deploy import SATURATION_FREE_INT8, ExportInfo, load_exported

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def run(script, *args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


def assert_one_line_error(proc, expected):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, last
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def validate_json(tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    proc = run("validate.py", *args, "--json", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    root = tmp_path_factory.mktemp("deploy") / "digits"
    write_digits_imagefolder(root)
    return root


@pytest.fixture(scope="session")
def trained(digits, tmp_path_factory):
    """The demo recipe (ShuffleNet V2 0.5x, 32x32 digits) trained for 3 epochs; its best checkpoint."""
    run_dir = tmp_path_factory.mktemp("run")
    proc = run("train.py", "--config", DEMO, "--data_dir", digits, "--ckpt_save_dir", run_dir, "--epoch_size", 3,
               "--decay_epochs", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "shufflenet_v2_x0_5-best.ckpt"


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory):
    """The trained model exported as float ONNX and float MindIR by export.py."""
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for file_format in ("ONNX", "MINDIR"):
        proc = run("export.py", "--config", DEMO, "--ckpt_path", trained, "--file_format", file_format,
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
def test_validate_model_file_reproduces_the_checkpoint(trained, exported, digits, tmp_path):
    reference, _ = validate_json(tmp_path, "ckpt", "--config", DEMO, "--ckpt_path", trained, "--data_dir", digits)
    assert reference["images"] == 359 and reference["top1"] > 50  # a trained network, not chance (10%)
    for file_format, path in exported.items():
        # no --config: the model name, image size, crop_pct, mean and std come from the file
        got, stdout = validate_json(tmp_path, file_format, "--model_file", path, "--data_dir", digits)
        assert stdout.startswith(f"{path.name} (shufflenet_v2_x0_5, {file_format} float32): top-1 ")
        assert got["images"] == 359 and got["format"] == file_format and got["quantization"] is None
        assert got["top1"] == reference["top1"] and got["top5"] == reference["top5"]
        assert got["loss"] == pytest.approx(reference["loss"], abs=1e-4)


@pytest.mark.slow
def test_infer_model_file_gives_the_checkpoints_classes(trained, exported, digits):
    image = sorted((digits / "val" / "7").iterdir())[0]
    expected = run("infer.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", trained, "--image_resize", 32,
                   "--crop_pct", 1.0, "--json", "--top_k", 3, image)
    assert expected.returncode == 0, expected.stderr[-2000:]
    want = json.loads(expected.stdout.strip().splitlines()[-1])["top_k"]
    for path in exported.values():
        proc = run("infer.py", "--model_file", path, "--json", "--top_k", 3, image)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])["top_k"]
        assert [g["label"] for g in got] == [w["label"] for w in want]  # names recorded in the file
        np.testing.assert_allclose([g["probability"] for g in got], [w["probability"] for w in want], atol=1e-5)


@pytest.mark.slow
def test_model_files_that_do_not_fit_are_refused_with_one_line(exported, digits, tmp_path):
    onnx_file = exported["ONNX"]
    assert_one_line_error(run("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--image_resize", 64),
                          f"{onnx_file} takes 3x32x32 images, but the preprocessing gives 64x64: set "
                          f"--image_resize 32")
    assert_one_line_error(run("validate.py", "--model_file", exported["MINDIR"], "--data_dir", digits,
                              "--num_classes", 12), "outputs 10 classes, not --num_classes 12")
    many = tmp_path / "eleven"
    a_digit = sorted((digits / "val" / "1").iterdir())[0].read_bytes()
    for label in range(11):
        (many / "val" / f"c{label:02d}").mkdir(parents=True)
        (many / "val" / f"c{label:02d}" / "a.png").write_bytes(a_digit)
    assert_one_line_error(run("validate.py", "--model_file", onnx_file, "--data_dir", many),
                          f"has 11 class folders but {onnx_file} outputs 10 classes")
    assert_one_line_error(run("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--model",
                              "shufflenet_v2_x1_0"), "was exported from shufflenet_v2_x0_5, not shufflenet_v2_x1_0")
    assert_one_line_error(run("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--ckpt_path", "x.ckpt"),
                          "give either --model_file or a checkpoint")
    given = run("validate.py", "--model_file", onnx_file, "--data_dir", digits, "--crop_pct", 0.875)
    assert given.returncode == 0, given.stderr[-2000:]
    assert f"warning: {onnx_file} records crop_pct 1.0; using the crop_pct given instead" in given.stderr
    not_a_model = tmp_path / "notes.onnx"
    not_a_model.write_text("not a model\n")
    assert_one_line_error(run("validate.py", "--model_file", not_a_model, "--data_dir", digits),
                          f"{not_a_model} is not an ONNX model onnxruntime can load")
    assert_one_line_error(run("infer.py", "--model_file", not_a_model, sorted((digits / "val" / "1").iterdir())[0]),
                          f"{not_a_model} is not an ONNX model onnxruntime can load")


# ------------------------------------------------------------------------------------------ loading, in-process

def test_files_that_are_not_models_are_refused(tmp_path):
    (tmp_path / "text.onnx").write_text("hello\n")
    (tmp_path / "empty.mindir").write_bytes(b"")
    (tmp_path / "text.mindir").write_text("hello, not MindIR\n")
    (tmp_path / "weights.ckpt").write_bytes(b"\0" * 16)
    (tmp_path / "folder.onnx").mkdir()
    cases = {"text.onnx": "is not an ONNX model onnxruntime can load (Protobuf parsing failed)",
             "empty.mindir": "is not a MindIR model with one input",
             "text.mindir": "is not a MindIR model with one input",
             "weights.ckpt": "not a model file this project runs (give a .onnx or .mindir file",
             "folder.onnx": "model file not found"}
    for name, message in cases.items():
        with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
            load_exported(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_exported(tmp_path / "missing.onnx")


def _onnx_graph(tmp_path, name, inputs, outputs, nodes, properties=None):
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (properties or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp_path / name))
    return tmp_path / name


def test_onnx_files_that_are_not_image_classifiers_are_refused(tmp_path):
    from onnx import helper

    two_inputs = _onnx_graph(tmp_path, "two.onnx", [("a", ["N", 3, 8, 8]), ("b", ["N", 3, 8, 8])],
                             [("y", ["N", 3, 8, 8])], [helper.make_node("Add", ["a", "b"], ["y"])])
    with pytest.raises(ValueError, match="is not an image classifier: expected one float32 input"):
        load_exported(two_inputs)
    flat = _onnx_graph(tmp_path, "flat.onnx", [("x", ["N", 10])], [("y", ["N", 10])],
                       [helper.make_node("Relu", ["x"], ["y"])])
    with pytest.raises(ValueError, match=re.escape("its input has shape ['N', 10], expected [batch, 3, H, W]")):
        load_exported(flat)
    bad_record = _onnx_graph(tmp_path, "record.onnx", [("x", ["N", 3, 4, 4])], [("y", ["N", 3])],
                             [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
                             {"mindcv_shufflenet.image_size": "\"big\""})
    with pytest.raises(ValueError, match="recorded mindcv_shufflenet.image_size is not valid"):
        load_exported(bad_record)


def test_a_fixed_batch_file_runs_any_number_of_images(tmp_path):
    """A file exported with --batch_size 4 evaluates 9 images (two full batches and a padded one)."""
    from onnx import helper

    path = _onnx_graph(tmp_path, "fixed.onnx", [("x", [4, 3, 4, 4])], [("y", [4, 3])],
                       [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
                       ExportInfo(model="m", num_classes=3, image_size=4).to_properties())
    model = load_exported(path)
    assert model.batch_size == 4 and model.num_classes == 3 and model.info.image_size == 4
    x = np.random.default_rng(0).standard_normal((9, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(model(x), x.mean(axis=(2, 3)), atol=1e-6)
    with pytest.raises(ValueError, match=re.escape("takes images of shape [batch, 3, 4, 4], got [2, 3, 5, 5]")):
        model(np.zeros((2, 3, 5, 5), np.float32))
    model.check_fits(4, num_classes=3, data_classes=3)
    with pytest.raises(ValueError, match="set --image_resize 4"):
        model.check_fits(8)


def test_export_info_round_trips_through_properties():
    info = ExportInfo(model="shufflenet_v2_x1_0", num_classes=1000, image_size=224, mean=(1.0, 2.0, 3.0),
                      std=(4.0, 5.0, 6.0), crop_pct=0.875, interpolation="bicubic", class_names=("a", "b"),
                      quantization="int8")
    properties = info.to_properties()
    assert properties["mindcv_shufflenet.num_classes"] == "1000"
    assert ExportInfo.from_properties({**properties, "other.key": "x"}, "f") == info
    assert ExportInfo.from_properties({}, "f") == ExportInfo()
    with pytest.raises(ValueError, match="recorded mindcv_shufflenet.crop_pct is not valid"):
        ExportInfo.from_properties({"mindcv_shufflenet.crop_pct": "1.5"}, "f")


# ---------------------------------------------------------------------------------------------------- INT8

def held_out(digits):
    """The digits' validation images, preprocessed as validate.py does for the demo recipe, and their labels."""
    from mindcv_shufflenet.data.transforms import eval_transforms
    from mindcv_shufflenet.deploy import find_images, load_image

    transforms = eval_transforms(32, 1.0)
    paths = find_images([digits / "val"])
    return np.stack([load_image(p, transforms) for p in paths]), np.array([int(p.parent.name) for p in paths])


def export_int8(checkpoint, digits, path, *options):
    proc = run("export.py", "--config", DEMO, "--ckpt_path", checkpoint, "--quantize", "int8", "--calib_dir",
               digits / "train", "--calib_images", 200, "--file_name", path, *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="session")
def int8(trained, digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8") / "digits-int8.onnx"
    return path, export_int8(trained, digits, path)


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
def test_validate_model_file_reports_the_int8_accuracy(int8, digits, tmp_path):
    path = int8[0]
    x, labels = held_out(digits)
    expected = 100 * (load_exported(path)(x).argmax(1) == labels).mean()
    got, stdout = validate_json(tmp_path, "int8", "--model_file", path, "--data_dir", digits)
    assert stdout.startswith(f"{path.name} (shufflenet_v2_x0_5, ONNX INT8): top-1 ")
    assert got["quantization"].startswith("int8 static QDQ") and got["top1"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_int8_v1_agrees_with_float_on_held_out_images(digits, tmp_path):
    """ShuffleNet V1 (g3, 0.5x: grouped 1x1 convs, channel shuffle, average-pool shortcuts) trained on the
    digits for 4 epochs, exported in float and INT8."""
    run_dir = tmp_path / "run"
    proc = run("train.py", "--config", DEMO, "--model", "shufflenet_v1_g3_05", "--data_dir", digits,
               "--ckpt_save_dir", run_dir, "--epoch_size", 4, "--decay_epochs", 3, "--lr", 0.02)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = run_dir / "shufflenet_v1_g3_05-best.ckpt"
    proc = run("export.py", "--config", DEMO, "--model", "shufflenet_v1_g3_05", "--ckpt_path", checkpoint,
               "--file_format", "ONNX", "--file_name", tmp_path / "v1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    export_int8(checkpoint, digits, tmp_path / "v1-int8", "--model", "shufflenet_v1_g3_05")
    assert_agrees_with_float(tmp_path / "v1.onnx", tmp_path / "v1-int8.onnx", digits, min_agreement=95.0)


# ------------------------------------------------------------------------------------------- calibration

def _colour_folder(root, colours, broken=0):
    from PIL import Image

    for i, colour in enumerate(colours):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), colour).save(folder / f"{i}.png")
    for i in range(broken):
        (root / "class0" / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "class0" / "notes.txt").write_text("not an image")
    return root


def test_calibration_images_are_preprocessed_as_validate_does(tmp_path):
    from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
    from mindcv_shufflenet.data import eval_transforms
    from mindcv_shufflenet.deploy.quantize import calibration_images

    colours = [(10, 20, 30), (200, 100, 0), (0, 255, 128), (90, 90, 90), (255, 0, 255)]
    root = _colour_folder(tmp_path / "calib", colours, broken=1)
    transforms = eval_transforms(8, 1.0)
    three = calibration_images(root, 3, transforms, seed=1)
    assert three.images.shape == (3, 3, 8, 8) and three.images.dtype == np.float32
    for path, image in zip(three.paths, three.images):
        pixel = (np.array(colours[int(path.stem)]) - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        np.testing.assert_allclose(image, np.broadcast_to(pixel[:, None, None], (3, 8, 8)), atol=1e-5)
    assert calibration_images(root, 3, transforms, seed=1).paths == three.paths  # the draw repeats
    everything = calibration_images(root, 100, transforms)
    assert len(everything.paths) == 5  # fewer than asked: all the readable ones
    assert [path.name for path, _ in everything.skipped] == ["broken0.png"]


def test_bad_calibration_folders_are_refused(tmp_path):
    from mindcv_shufflenet.data import eval_transforms
    from mindcv_shufflenet.deploy.quantize import calibration_images

    transforms = eval_transforms(8, 1.0)
    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "text" / "a").mkdir(parents=True)
    (tmp_path / "text" / "a" / "readme.txt").write_text("no images here")
    broken = tmp_path / "broken" / "a"
    broken.mkdir(parents=True)
    for name in ("1.jpg", "2.png"):
        (broken / name).write_bytes(b"")
    cases = [(tmp_path / "missing", 10, FileNotFoundError, f"calibration folder not found: {tmp_path / 'missing'}"),
             (tmp_path / "file.png", 10, FileNotFoundError, "calibration folder is a file, not a folder"),
             (tmp_path / "empty", 10, ValueError, "no images (.jpg, .jpeg, .png"),
             (tmp_path / "text", 10, ValueError, "no images (.jpg, .jpeg, .png"),
             (tmp_path / "broken", 10, ValueError, "none of the 2 image files under"),
             (tmp_path / "empty", 0, ValueError, "--calib_images must be a positive number of images, got 0")]
    for folder, count, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            calibration_images(folder, count, transforms)


AVX2, VNNI = "fpu sse2 avx avx2 fma", "fpu sse2 avx avx2 fma avx512f avx512_vnni"


def test_int8_kernels_saturate_only_on_x86_without_vnni():
    from mindcv_shufflenet.deploy import int8_kernels_saturate

    assert int8_kernels_saturate(AVX2)
    assert not int8_kernels_saturate(VNNI)
    assert not int8_kernels_saturate("fpu avx2 avx_vnni")
    assert not int8_kernels_saturate(None)  # not x86, or flags unknown


def test_full_range_int8_weights_are_judged_by_their_values_else_by_the_record():
    from mindcv_shufflenet.deploy import has_full_range_int8_weights

    old_default = "int8 static QDQ, per-channel int8 weights, uint8 activations, minmax calibration on 300 images"
    seven_bit = "int8 static QDQ, per-channel int8 (7-bit range) weights, uint8 activations, minmax calibration"
    unsigned = "int8 static QDQ, per-channel uint8 weights, uint8 activations, minmax calibration"
    assert has_full_range_int8_weights(None, old_default)  # without the onnx package: the record decides
    assert has_full_range_int8_weights(None, old_default.replace("per-channel", "per-tensor"))
    assert not has_full_range_int8_weights(None, seven_bit)
    assert not has_full_range_int8_weights(None, unsigned)
    assert not has_full_range_int8_weights(None, "")
    assert has_full_range_int8_weights(127, "")  # a file from another tool, without a record
    assert has_full_range_int8_weights(65, seven_bit)  # the values win over the record
    assert not has_full_range_int8_weights(64, old_default)
    assert not has_full_range_int8_weights(0, "")  # a float file


def _int8_conv_classifier(tmp_path, name, weights):
    """x [N, 3, 4, 4] -> 1x1 Conv with QDQ int8 weights (one scale per output channel) -> mean -> [N, 3]; no record."""
    from onnx import TensorProto, helper, numpy_helper

    path = _onnx_graph(tmp_path, name, [("x", ["N", 3, 4, 4])], [("y", ["N", 3])], [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=0)])
    model = onnx.load(str(path))
    model.graph.initializer.extend([
        numpy_helper.from_array(np.asarray(weights, np.int8).reshape(3, 3, 1, 1), "w_q"),
        numpy_helper.from_array(np.full(3, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(3, np.int8), "w_zero")])
    assert model.graph.initializer[-1].data_type == TensorProto.INT8
    onnx.save(model, str(path))
    return path


def test_loading_full_range_int8_weights_warns_on_x86_without_vnni(tmp_path, monkeypatch, caplog):
    """The warning reads the weights themselves, so it covers files quantized by other tools (no record)."""
    import logging

    from mindcv_shufflenet.deploy import exported

    full_weights, seven_bit_weights = [-128, 5, 1, 2, 127, 3, 0, 1, 9], [-64, 5, 1, 2, 64, 3, 0, 1, 9]
    full = _int8_conv_classifier(tmp_path, "full.onnx", full_weights)
    seven_bit = _int8_conv_classifier(tmp_path, "seven.onnx", seven_bit_weights)
    x = np.ones((2, 3, 4, 4), np.float32)
    cases = [(AVX2, full, full_weights, True), (AVX2, seven_bit, seven_bit_weights, False),
             (VNNI, full, full_weights, False)]
    for flags, path, weights, warned in cases:
        monkeypatch.setattr(exported, "cpu_flags", lambda: flags)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=exported.__name__):
            model = exported.load_exported(path)
        expected = 0.01 * np.asarray(weights, np.float32).reshape(3, 3).sum(axis=1)  # ones in, mean over 4x4
        np.testing.assert_allclose(model(x), np.tile(expected, (2, 1)), rtol=1e-5)
        if warned:
            assert f"{path} has int8 weights up to 128 (more than 64), and this CPU (x86 without VNNI)" in caplog.text
        else:
            assert not caplog.text, (flags, path)


@pytest.mark.slow
def test_export_refuses_bad_int8_options_with_one_line(tmp_path):
    base = ["--model", "shufflenet_v2_x0_5", "--pretrained"]
    assert_one_line_error(run("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path / "missing"),
                          f"calibration folder not found: {tmp_path / 'missing'}: give --calib_dir a folder of images")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path / "empty"),
                          f"no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff) under {tmp_path / 'empty'}")
    assert_one_line_error(run("export.py", *base, "--quantize", "int8"), "--quantize int8 needs calibration images")
    assert_one_line_error(run("export.py", *base, "--calib_dir", tmp_path), "--calib_dir is for INT8 export")
    assert_one_line_error(run("export.py", *base, "--weight_bits", 8), "--weight_bits is for INT8 export")
    assert_one_line_error(run("export.py", *base, "--quantize", "int8", "--calib_dir", tmp_path, "--file_format",
                              "MINDIR"), "--quantize int8 writes ONNX, not MINDIR")


# ------------------------------------------------------------------------------------------- benchmark script

@pytest.mark.slow
def test_deploy_benchmark_speed_quick_run_writes_ratios_to_the_float_file(tmp_path):
    import importlib.util

    torch = all(importlib.util.find_spec(name) for name in ("torch", "torchvision"))
    proc = run("scripts/deploy_benchmark.py", "speed", "--model", "shufflenet_v2_x0_5", "--image_size", 32,
               "--batches", "1,2", "--rounds", 2, "--seconds", 0.1, "--threads", 1, "--variants",
               "float,qdq,qdq@basic,torchvision-int8", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    rows = {(row["file"], row["batch"]): row for row in result["rows"]}
    names = ("float", "qdq", "qdq@basic") + (("torchvision-int8",) if torch else ())
    assert set(rows) == {(name, batch) for name in names for batch in (1, 2)}
    if not torch:  # torchvision's model is skipped with a note (in the table too)
        assert result["skipped"] == [f"torchvision-int8 skipped: torch and torchvision not installed in "
                                     f"{sys.executable} (run from a separate environment with PyTorch, see the "
                                     f"README)"]
        assert f"note: {result['skipped'][0]}" in (tmp_path / "speed.md").read_text()
    for (name, batch), row in rows.items():
        assert len(row["samples_img_per_s"]) == 2 and row["img_per_s"] > 0
        base = rows[("float", batch)]["img_per_s"]
        assert row["speedup"] == pytest.approx(row["img_per_s"] / base)
    assert rows[("qdq", 1)]["size_mb"] == rows[("qdq@basic", 1)]["size_mb"] < rows[("float", 1)]["size_mb"]
    assert result["threads"] == 1 and len(result["load_before"]) == 3
    assert "| qdq | 1 |" in (tmp_path / "speed.md").read_text()
    assert not list(tmp_path.glob("*.onnx"))  # the scratch model files are not left in --out
