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
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.constants import POOL_PADDINGS
from mindcv_shufflenet.export import FORMATS, export_model
from mindcv_shufflenet.models.weights import checkpoint_classes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt_path", help="checkpoint (this project's, MindCV's or a converted one)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    p.add_argument("--ema", action="store_true", help="export the checkpoint's EMA weights")
    p.add_argument("--num_classes", type=int, default=None, help="default: the checkpoint's (1000 with --pretrained)")
    p.add_argument("--file_format", default="MINDIR", type=str.upper, choices=FORMATS)
    p.add_argument("--file_name", default=None, help="output file (default: the model name)")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--batch_size", type=int, default=None, help="fixed batch size (default: dynamic)")
    p.add_argument("--pool_padding", default=None, choices=POOL_PADDINGS,
                   help="default: the checkpoint's recorded setting, else 'same'")
    p.add_argument("--no_fold_bn", action="store_true", help="keep the BatchNorm layers")
    p.add_argument("--no_check", action="store_true", help="do not run the exported file to compare")
    p.add_argument("--device", "--device_target", dest="device", default="auto",
                   help="CPU, Ascend, GPU or auto (Ascend when available, else CPU); AIR needs Ascend")
    p.add_argument("--debug", action="store_true", help="show a traceback instead of a one-line error")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = runtime.resolve_device(args.device)
    if args.file_format == "AIR" and device != "Ascend":
        raise ValueError(f"AIR export needs an Ascend device (running on {device}): export MINDIR or ONNX "
                         f"here, or run on an Ascend machine with --device Ascend")
    runtime.init_runtime(device=device, mode="graph")
    num_classes = args.num_classes
    if args.ckpt_path and num_classes is None:
        num_classes = checkpoint_classes(args.ckpt_path, ema=args.ema)[0]
    net = create_model(args.model, num_classes=num_classes or 1000, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding)
    result = export_model(net, args.file_name or args.model, args.file_format, args.image_size, args.batch_size,
                          fold_bn=not args.no_fold_bn, check=not args.no_check)
    batch = args.batch_size or "batch"
    checked = (f"{result.checked_with} vs the network: max abs diff {result.max_abs_diff:.1e}"
               if result.max_abs_diff is not None else result.checked_with)
    print(f"{result.path}: input float32 [{batch}, 3, {args.image_size}, {args.image_size}] (RGB, ImageNet "
          f"mean/std), output [{batch}, {net.num_classes}] logits; {result.folded_batchnorms} BatchNorms folded; "
          f"{checked}")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
