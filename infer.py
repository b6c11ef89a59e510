"""Classify images: top-k classes with probabilities for image files and folders.

    python infer.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt cat.jpg photos/
    # cat.jpg: tabby 62.31%, tiger cat 21.04%, Egyptian cat 10.12%, lynx 1.20%, tiger 0.43%   (made-up figures)

Preprocessing is validate.py's (resize the short side to image_resize / crop_pct, center crop, ImageNet
mean/std). Class names: --class_names (a file with one name per line, or a dataset folder whose sorted
subfolders are the classes), else those recorded in the checkpoint, else a classes.txt beside it, else
ImageNet's for 1000 classes, else class indices. The number of classes is read from the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import json
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.constants import INTERPOLATIONS, POOL_PADDINGS
from mindcv_shufflenet.data.transforms import eval_transforms
from mindcv_shufflenet.inference import find_images, predict, resolve_class_names
from mindcv_shufflenet.models.weights import checkpoint_classes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="image files and folders (searched recursively)")
    p.add_argument("--model", required=True, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt_path", help="checkpoint (this project's, MindCV's or a converted one)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    p.add_argument("--ema", action="store_true", help="use the checkpoint's EMA weights")
    p.add_argument("--num_classes", type=int, default=None, help="default: the checkpoint's (1000 with --pretrained)")
    p.add_argument("--class_names", default=None, help="file with one class name per line, or a dataset folder")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--image_resize", type=int, default=224, help="crop size fed to the network")
    p.add_argument("--crop_pct", type=float, default=0.875)
    p.add_argument("--interpolation", default="bilinear", choices=INTERPOLATIONS)
    p.add_argument("--pool_padding", default=None, choices=POOL_PADDINGS,
                   help="default: the checkpoint's recorded setting, else 'same'")
    p.add_argument("--device", "--device_target", dest="device", default="auto",
                   help="CPU, Ascend, GPU or auto (Ascend when available, else CPU)")
    p.add_argument("--mode", default="graph", help="graph or pynative")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--debug", action="store_true", help="show a traceback instead of a one-line error")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    images = find_images(args.images)
    transforms = eval_transforms(args.image_resize, args.crop_pct, args.interpolation)
    runtime.init_runtime(device=runtime.resolve_device(args.device), mode=args.mode)
    num_classes, recorded_names = args.num_classes, None
    if args.ckpt_path:
        file_classes, recorded_names = checkpoint_classes(args.ckpt_path, ema=args.ema)
        num_classes = num_classes or file_classes
    num_classes = num_classes or 1000
    names, origin = resolve_class_names(num_classes, args.class_names, recorded_names, args.ckpt_path)
    net = create_model(args.model, num_classes=num_classes, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding)
    if not args.json:
        print(f"{args.model}, {num_classes} classes (names: {origin}), {len(images)} image{'s' * (len(images) != 1)}")
    for result in predict(net, images, transforms, args.batch_size, args.top_k):
        if args.json:
            print(json.dumps({"image": str(result.path), "top_k": [
                {"index": i, "label": names[i], "probability": round(p, 6)}
                for i, p in zip(result.indices, result.probabilities)]}))
        else:
            print(f"{result.path}: " + ", ".join(f"{names[i]} {100 * p:.2f}%"
                                                 for i, p in zip(result.indices, result.probabilities)))
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
