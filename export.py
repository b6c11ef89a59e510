"""Export a model for deployment: MindIR or ONNX (dynamic batch) on any device, AIR on Ascend, INT8 ONNX.

    python export.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt --file_format ONNX
    # shufflenet_v2_x1_0.onnx: input float32 [batch, 3, 224, 224] (RGB, ImageNet mean/std), output
    # [batch, 1000] logits; 56 BatchNorms folded; onnxruntime vs the network: max abs diff 1.1e-05
    python export.py --config configs/demo/shufflenet_v2_digits_cpu.yaml --ckpt_path run/...-best.ckpt \\
        --quantize int8 --calib_dir data/digits/train          # INT8 ONNX, static post-training quantization

The ONNX graph's input is named "image" and its output "logits". With --features_only the file is a
backbone: one output per feature map that --out_indices chooses (default: every index the model has),
named feature_<index>; validate.py and infer.py refuse such a file.

    python export.py --model shufflenet_v2_x1_0 --pretrained --features_only --out_indices 1,2,3 --file_format ONNX

BatchNorm is folded into the convolutions. The exported file is run once on a random batch (MindIR
reloaded in MindSpore, ONNX in onnxruntime when installed) and compared with the network. The file records
the model name, class count (and names, when the checkpoint or its run folder has them) and the
preprocessing (image size, crop_pct, interpolation, mean/std, channel order: from the options, else
--config, else what the checkpoint records it was trained with, else the model's), which
validate.py --model_file and infer.py --model_file read back.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import runtime
from mindcv_shufflenet.cli import (
    PREPROCESSING_OPTIONS,
    add_model_arguments,
    eval_preprocessing,
    model_from_arguments,
    resolve_model_arguments,
)
from mindcv_shufflenet.constants import INTERPOLATIONS
from mindcv_shufflenet.deploy import (
    FORMATS,
    ExportInfo,
    ExportResult,
    export_model,
    output_names,
    resolve_class_names,
)
from mindcv_shufflenet.models.metadata import Preprocessing


def _indices(text: str) -> List[int]:
    try:
        return [int(v) for v in text.strip("[]()").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected feature indices separated by commas, got {text!r}") from None


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.strip("[]").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(p, "export")
    p.add_argument("--file_format", default=None, type=str.upper, choices=FORMATS,
                   help="default MINDIR (ONNX with --quantize)")
    p.add_argument("--file_name", default=None, help="output file (default: the model name, +'-int8' for INT8)")
    p.add_argument("--image_size", type=int, default=None, help="input height and width (default: the model's)")
    p.add_argument("--crop_pct", type=float, default=None, help="recorded preprocessing (default: the model's)")
    p.add_argument("--interpolation", default=None, choices=INTERPOLATIONS, help="recorded (default: the model's)")
    p.add_argument("--mean", type=_floats, default=None, help="recorded, 0-255 scale (default: the model's)")
    p.add_argument("--std", type=_floats, default=None, help="recorded, 0-255 scale (default: the model's)")
    p.add_argument("--batch_size", type=int, default=None, help="fixed batch size (default: dynamic)")
    p.add_argument("--no_fold_bn", action="store_true", help="keep the BatchNorm layers")
    p.add_argument("--no_check", action="store_true", help="do not run the exported file to compare")
    p.add_argument("--features_only", action="store_true",
                   help="export the backbone: one output per feature map (see --out_indices), no classifier")
    p.add_argument("--out_indices", type=_indices, default=None,
                   help="with --features_only: feature indices, e.g. 1,2,3 (strides 8/16/32); 0 is stride 4, 4 the "
                        "final conv (default: every index the model has)")
    p.add_argument("--quantize", default=None, choices=["int8"],
                   help="write an INT8 ONNX file (static post-training quantization, QDQ, per-channel weights)")
    p.add_argument("--calib_dir", default=None, help="with --quantize: folder of calibration images (recursive)")
    p.add_argument("--calib_images", type=int, default=None, help="with --quantize: how many (default 300)")
    p.add_argument("--calib_method", default=None, choices=["minmax", "entropy", "percentile"],
                   help="with --quantize: activation calibration (default minmax, chosen by measurement)")
    p.add_argument("--weight_bits", type=int, default=None, choices=[7, 8],
                   help="with --quantize: range of the int8 weights (default 7: no saturation on any CPU; 8 saturates "
                        "in onnxruntime on x86 CPUs without VNNI, use it only for files run on VNNI or ARM)")
    return _check_format(resolve_model_arguments(p.parse_args(argv)))


def _check_format(args: argparse.Namespace) -> argparse.Namespace:
    """The file format, and refusal of option combinations that cannot work."""
    if args.out_indices is not None and not args.features_only:
        raise ValueError("--out_indices chooses the feature maps of --features_only: add --features_only")
    if args.features_only and args.quantize:
        raise ValueError("--quantize int8 compares the INT8 file's logits with the float one's: export a classifier "
                         "(drop --features_only)")
    if args.quantize:
        _check_quantize_args(args)
    else:
        for option in ("calib_dir", "calib_images", "calib_method", "weight_bits"):
            if getattr(args, option) is not None:
                raise ValueError(f"--{option} is for INT8 export: add --quantize int8, or leave it out")
        args.file_format = args.file_format or "MINDIR"
    return args


def _check_quantize_args(args: argparse.Namespace) -> None:
    if args.file_format not in (None, "ONNX"):
        raise ValueError(f"--quantize int8 writes ONNX, not {args.file_format}: drop --file_format (for an INT8 "
                         f"model on MindSpore Lite, see docs/export-and-deploy.md)")
    if not args.calib_dir:
        raise ValueError("--quantize int8 needs calibration images: add --calib_dir FOLDER (e.g. the training split)")
    if args.no_fold_bn:
        raise ValueError("--quantize int8 folds BatchNorm first: drop --no_fold_bn")
    args.file_format = "ONNX"
    args.calib_images = 300 if args.calib_images is None else args.calib_images
    args.calib_method = args.calib_method or "minmax"
    args.weight_bits = args.weight_bits or 7


def _check_device(args: argparse.Namespace) -> str:
    if args.file_format == "AIR" and not args.batch_size:
        # MindSpore 2.10 deprecates AIR, and a dynamic batch was never verified for it.
        raise ValueError("AIR export needs a fixed --batch_size N (AIR is deprecated in MindSpore 2.10 and its "
                         "dynamic batch is unverified): add --batch_size, or export MINDIR or ONNX")
    device = runtime.resolve_device(args.device)
    if args.file_format == "AIR":
        print("note: AIR is deprecated in MindSpore 2.10; MINDIR is its format for Ascend inference")
    if args.file_format == "AIR" and device != "Ascend":
        raise ValueError(f"AIR export needs an Ascend device (running on {device}): export MINDIR or ONNX "
                         f"here, or run on an Ascend machine with --device Ascend")
    return device


def _preprocessing(args: argparse.Namespace) -> Preprocessing:
    """The input the exported file takes (and records): the options, else --config, else what the checkpoint
    records it was trained with, else the model's."""
    given = {option: getattr(args, option, None) for option in PREPROCESSING_OPTIONS}
    given["image_resize"] = args.image_size or given["image_resize"]
    return eval_preprocessing(args.model, args.ckpt_path, given)


def export_info(args: argparse.Namespace, pre: Preprocessing, num_classes: int,
                recorded_names: Optional[List[str]], out_indices: Optional[Sequence[int]] = None) -> ExportInfo:
    """What the file records: the model, its classes (or feature indices) and the preprocessing its input needs."""
    if args.features_only:
        return ExportInfo(model=args.model, image_size=pre.input_size, mean=tuple(pre.mean), std=tuple(pre.std),
                          crop_pct=pre.crop_pct, interpolation=pre.interpolation, channel_order=pre.channel_order,
                          out_indices=tuple(out_indices))
    names, origin = resolve_class_names(num_classes, None, recorded_names, args.ckpt_path)
    keep_names = origin not in ("ImageNet",) and not origin.startswith("class indices")
    return ExportInfo(model=args.model, num_classes=num_classes, image_size=pre.input_size, mean=tuple(pre.mean),
                      std=tuple(pre.std), crop_pct=pre.crop_pct, interpolation=pre.interpolation,
                      channel_order=pre.channel_order, class_names=tuple(names) if keep_names else None)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = _check_device(args)
    pre = _preprocessing(args)
    calibration = _calibration(args, pre) if args.quantize else None
    runtime.init_runtime(device=device, mode="graph")
    net, recorded_names = model_from_arguments(args)
    info = export_info(args, pre, net.num_classes, recorded_names, getattr(net, "out_indices", None))
    if calibration is None:
        result = export_model(net, args.file_name or args.model, args.file_format, pre.input_size, args.batch_size,
                              fold_bn=not args.no_fold_bn, check=not args.no_check, info=info)
        print(_summary(args, pre, result, net))
        return 0
    return _export_int8(args, pre, net, info, calibration)


def _summary(args: argparse.Namespace, pre: Preprocessing, result: ExportResult, net) -> str:
    batch = args.batch_size or "batch"
    checked = (f"{result.checked_with} vs the network: max abs diff {result.max_abs_diff:.1e}"
               if result.max_abs_diff is not None else result.checked_with)
    recorded = "" if result.info_recorded or result.file_format == "AIR" else (
        "; model name and preprocessing not recorded in the file (pip install onnx to record them)")
    if args.features_only:
        maps = ", ".join(f"{name} [{batch}, {s['num_chs']}, {pre.input_size // s['reduction']}, "
                         f"{pre.input_size // s['reduction']}]" for name, s in zip(output_names(net), net.feature_info))
        outputs = f"outputs {maps}"
    else:
        outputs = f"output [{batch}, {net.num_classes}] logits"
    return (f"{result.path}: input float32 [{batch}, 3, {pre.input_size}, {pre.input_size}] ({pre.describe()}), "
            f"{outputs}; {result.folded_batchnorms} BatchNorms folded; {checked}{recorded}")


def _calibration(args: argparse.Namespace, pre: Preprocessing):
    """The calibration images, read before anything is built so that a bad folder fails fast."""
    try:
        from mindcv_shufflenet.deploy.quantize import calibration_images
    except ImportError as err:
        raise ValueError(f"--quantize int8 needs onnx and onnxruntime ({err}): pip install -e .[deploy]") from None
    from mindcv_shufflenet.data.transforms import eval_transforms

    transforms = eval_transforms(pre.input_size, pre.crop_pct, pre.interpolation, pre.mean, pre.std,
                                 pre.channel_order)
    calibration = calibration_images(args.calib_dir, args.calib_images, transforms)
    if calibration.skipped:
        print(f"warning: skipped {len(calibration.skipped)} unreadable file(s) under {args.calib_dir} "
              f"(first: {calibration.skipped[0][0]}: {calibration.skipped[0][1]})", file=sys.stderr)
    if len(calibration.paths) < args.calib_images:
        print(f"note: {args.calib_dir} has {len(calibration.paths)} readable images, fewer than --calib_images "
              f"{args.calib_images}: calibrating on all of them")
    return calibration


def _export_int8(args: argparse.Namespace, pre: Preprocessing, net, info: ExportInfo, calibration) -> int:
    from mindcv_shufflenet.deploy import load_exported
    from mindcv_shufflenet.deploy.quantize import QuantSettings, compare_logits, quantize_onnx

    settings = QuantSettings(method=args.calib_method, reduce_range=args.weight_bits == 7)
    output = Path(args.file_name or f"{args.model}-int8")
    output = output if output.suffix.lower() == ".onnx" else output.with_name(output.name + ".onnx")
    with tempfile.TemporaryDirectory(prefix="export-int8-") as work:
        result = export_model(net, Path(work) / "float.onnx", "ONNX", pre.input_size, args.batch_size,
                              check=not args.no_check, info=info)
        quantize_onnx(result.path, output, calibration.images, settings, info)
        float_logits = load_exported(result.path)(calibration.images)
    agreement = compare_logits(float_logits, load_exported(output)(calibration.images))
    batch = args.batch_size or "batch"
    print(f"{output}: INT8 ({settings.describe(len(calibration.paths))} from {args.calib_dir}); input float32 "
          f"[{batch}, 3, {pre.input_size}, {pre.input_size}] ({pre.describe()}), output "
          f"[{batch}, {net.num_classes}] logits; {result.folded_batchnorms} BatchNorms folded")
    print(f"INT8 vs float on the {agreement.images} calibration images: top-1 agreement "
          f"{agreement.top1_agreement:.2f}%, max abs logit diff {agreement.max_abs_diff:.3g} (mean "
          f"{agreement.mean_abs_diff:.3g}); {output.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
