"""Classify images: top-k classes with probabilities for image files and folders.

    python infer.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt cat.jpg photos/
    # cat.jpg: tabby 62.31%, tiger cat 21.04%, Egyptian cat 10.12%, lynx 1.20%, tiger 0.43%   (made-up figures)

Preprocessing is validate.py's: resize the short side to image_resize / crop_pct, center crop, normalize,
with the model's settings (``model_info(model).preprocessing``) where no option is given. Class names:
--class_names (a file with one name per line, or a dataset folder whose sorted subfolders are the classes),
else those recorded in the checkpoint, else a classes.txt beside it, else ImageNet's for 1000 classes, else
class indices. The number of classes is read from the checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import json
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import runtime
from mindcv_shufflenet.cli import add_model_arguments, model_from_arguments
from mindcv_shufflenet.constants import INTERPOLATIONS
from mindcv_shufflenet.data.transforms import eval_transforms
from mindcv_shufflenet.inference import find_images, predict, resolve_class_names
from mindcv_shufflenet.models import model_info


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="image files and folders (searched recursively)")
    add_model_arguments(p, "use")
    p.add_argument("--class_names", default=None, help="file with one class name per line, or a dataset folder")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--image_resize", type=int, default=None,
                   help="crop size fed to the network (default: the model's)")
    p.add_argument("--crop_pct", type=float, default=None, help="default: the model's")
    p.add_argument("--interpolation", default=None, choices=INTERPOLATIONS, help="default: the model's")
    p.add_argument("--mode", default="graph", help="graph or pynative")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    images = find_images(args.images)
    pre = model_info(args.model).preprocessing
    transforms = eval_transforms(args.image_resize or pre.input_size, args.crop_pct or pre.crop_pct,
                                 args.interpolation or pre.interpolation, pre.mean, pre.std, pre.channel_order)
    runtime.init_runtime(device=runtime.resolve_device(args.device), mode=args.mode)
    net, recorded_names = model_from_arguments(args)
    num_classes = net.num_classes
    names, origin = resolve_class_names(num_classes, args.class_names, recorded_names, args.ckpt_path)
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
