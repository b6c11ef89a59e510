"""Evaluate a model on an ImageNet-style folder: top-1 / top-5 accuracy and loss.

    python validate.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt \
        --data_dir /data/imagenet [--val_split val] [--batch_size 64] [--device Ascend]

Flag names follow MindCV's config keys. Preprocessing is MindCV's: resize the short side to
image_resize / crop_pct, center crop, ImageNet mean/std.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.data import create_eval_dataset
from mindcv_shufflenet.data.imagefolder import INTERPOLATIONS
from mindcv_shufflenet.engine import evaluate


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt_path", help="checkpoint to evaluate (loaded strictly)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    p.add_argument("--ema", action="store_true", help="evaluate the checkpoint's EMA weights")
    p.add_argument("--data_dir", required=True, help="folder with <val_split>/<class>/<images>")
    p.add_argument("--val_split", default="val", help="subfolder of --data_dir to read ('' for --data_dir itself)")
    p.add_argument("--num_classes", type=int, default=1000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_resize", type=int, default=224, help="crop size fed to the network")
    p.add_argument("--crop_pct", type=float, default=0.875)
    p.add_argument("--interpolation", default="bilinear", choices=sorted(INTERPOLATIONS))
    p.add_argument("--pool_padding", default="same", choices=["same", "symmetric"],
                   help="'symmetric' for weights from torchvision, the official code or MindCV main's V1")
    p.add_argument("--num_parallel_workers", type=int, default=None)
    p.add_argument("--device", default="CPU", help="CPU, Ascend or GPU")
    p.add_argument("--mode", default="graph", help="graph or pynative")
    p.add_argument("--log_interval", type=int, default=0, help="print progress every N batches (0: never)")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    runtime.init_runtime(device=args.device, mode=args.mode)
    dataset = create_eval_dataset(args.data_dir, args.val_split, args.batch_size, args.image_resize,
                                  args.crop_pct, args.interpolation, args.num_parallel_workers, args.num_classes)
    net = create_model(args.model, num_classes=args.num_classes, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding)
    result = evaluate(net, dataset, log_every=args.log_interval)
    print(f"{args.model}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  loss {result.loss:.4f}  "
          f"({result.images} images in {result.seconds:.1f} s, {result.images_per_second:.1f} img/s after the first batch)")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main)
