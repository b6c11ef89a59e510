"""Exported models in process: files that are not image classifiers are refused, a fixed batch runs any number of
images, the recorded settings round-trip, calibration images are preprocessed as validate.py does, and INT8
weights are judged against the CPU that runs them (the commands: integration/test_deploy.py)."""

import re

import numpy as np
import pytest

from mindcv_shufflenet.deploy import ExportInfo, load_exported

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


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
        monkeypatch.setattr(exported, "cpu_flags", lambda flags=flags: flags)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=exported.__name__):
            model = exported.load_exported(path)
        expected = 0.01 * np.asarray(weights, np.float32).reshape(3, 3).sum(axis=1)  # ones in, mean over 4x4
        np.testing.assert_allclose(model(x), np.tile(expected, (2, 1)), rtol=1e-5)
        if warned:
            assert f"{path} has int8 weights up to 128 (more than 64), and this CPU (x86 without VNNI)" in caplog.text
        else:
            assert not caplog.text, (flags, path)
