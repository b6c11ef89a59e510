"""Export a model for deployment: MindIR or ONNX (dynamic batch) on any device, AIR on Ascend.

    python export.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt --file_format ONNX
    # shufflenet_v2_x1_0.onnx: input float32 [batch, 3, 224, 224] (RGB, ImageNet mean/std), output
    # [batch, 1000] logits; 56 BatchNorms folded; onnxruntime vs the network: max abs diff 1.1e-05

The ONNX graph's input is named "image" and its output "logits".

BatchNorm is folded into the convolutions. The exported file is run once on a random batch (MindIR
reloaded in MindSpore, ONNX in onnxruntime when installed) and compared with the network.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import runtime
from mindcv_shufflenet.cli import add_model_arguments, model_from_arguments
from mindcv_shufflenet.export import FORMATS, export_model
from mindcv_shufflenet.models import model_info


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(p, "export")
    p.add_argument("--file_format", default="MINDIR", type=str.upper, choices=FORMATS)
    p.add_argument("--file_name", default=None, help="output file (default: the model name)")
    p.add_argument("--image_size", type=int, default=None, help="default: the model's input size")
    p.add_argument("--batch_size", type=int, default=None, help="fixed batch size (default: dynamic)")
    p.add_argument("--no_fold_bn", action="store_true", help="keep the BatchNorm layers")
    p.add_argument("--no_check", action="store_true", help="do not run the exported file to compare")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
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
    pre = model_info(args.model).preprocessing
    image_size = args.image_size or pre.input_size
    runtime.init_runtime(device=device, mode="graph")
    net, _ = model_from_arguments(args)
    result = export_model(net, args.file_name or args.model, args.file_format, image_size, args.batch_size,
                          fold_bn=not args.no_fold_bn, check=not args.no_check)
    batch = args.batch_size or "batch"
    checked = (f"{result.checked_with} vs the network: max abs diff {result.max_abs_diff:.1e}"
               if result.max_abs_diff is not None else result.checked_with)
    print(f"{result.path}: input float32 [{batch}, 3, {image_size}, {image_size}] ({pre.describe()}), output "
          f"[{batch}, {net.num_classes}] logits; {result.folded_batchnorms} BatchNorms folded; {checked}")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
