"""Classify images: top-k classes with probabilities for image files and folders.

    python infer.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt cat.jpg photos/
    # cat.jpg: tabby 62.31%, tiger cat 21.04%, Egyptian cat 10.12%, lynx 1.20%, tiger 0.43%   (made-up figures)
    python infer.py --model_file shufflenet_v2_x1_0-int8.onnx cat.jpg     # an exported .onnx or .mindir

Preprocessing is validate.py's (resize the short side to image_resize / crop_pct, center crop, ImageNet
mean/std). Class names: --class_names (a file with one name per line, or a dataset folder whose sorted
subfolders are the classes), else those recorded in the checkpoint, else a classes.txt beside it, else
ImageNet's for 1000 classes, else class indices. The number of classes is read from the checkpoint.
With --model_file, the model name, classes, class names and preprocessing (image size, crop_pct,
interpolation, mean/std) come from what export.py recorded in the file, unless given here.
"""

from __future__ import annotations

import argparse
import sys
import json
from typing import List, Optional

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, eval_transforms
from mindcv_shufflenet.deploy import ExportedModel, describe, load_exported, recorded_class_names
from mindcv_shufflenet.inference import find_images, predict, resolve_class_names
from mindcv_shufflenet.models.weights import checkpoint_classes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="image files and folders (searched recursively)")
    p.add_argument("--model", default=None, help="a name from list_models(), e.g. shufflenet_v2_x1_0 "
                   "(with --model_file: default the recorded name)")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt_path", help="checkpoint (this project's, MindCV's or a converted one)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    weights.add_argument("--model_file", help="an exported model (.onnx through onnxruntime, .mindir through "
                         "MindSpore)")
    p.add_argument("--ema", action="store_true", help="use the checkpoint's EMA weights")
    p.add_argument("--num_classes", type=int, default=None, help="default: the checkpoint's (1000 with --pretrained)")
    p.add_argument("--class_names", default=None, help="file with one class name per line, or a dataset folder")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--image_resize", type=int, default=None,
                   help="crop size fed to the network (default: recorded in --model_file, else 224)")
    p.add_argument("--crop_pct", type=float, default=None, help="default: recorded in --model_file, else 0.875")
    p.add_argument("--interpolation", default=None, choices=sorted(INTERPOLATIONS),
                   help="default: recorded in --model_file, else bilinear")
    p.add_argument("--pool_padding", default=None, choices=["same", "symmetric"],
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
    exported = load_exported(args.model_file) if args.model_file else None
    transforms = eval_transforms(*_preprocessing(args, exported))
    runtime.init_runtime(device=runtime.resolve_device(args.device), mode=args.mode)
    if exported is not None:
        net, name, num_classes, recorded_names = _exported_classifier(args, exported)
    else:
        net, name, num_classes, recorded_names = _checkpoint_classifier(args)
    names, origin = resolve_class_names(num_classes, args.class_names, recorded_names,
                                        args.ckpt_path or args.model_file,
                                        recorded_origin="the model file" if exported else "the checkpoint")
    if not args.json:
        print(f"{name}, {num_classes} classes (names: {origin}), {len(images)} image{'s' * (len(images) != 1)}")
    for result in predict(net, images, transforms, args.batch_size, args.top_k):
        if args.json:
            print(json.dumps({"image": str(result.path), "top_k": [
                {"index": i, "label": names[i], "probability": round(p, 6)}
                for i, p in zip(result.indices, result.probabilities)]}))
        else:
            print(f"{result.path}: " + ", ".join(f"{names[i]} {100 * p:.2f}%"
                                                 for i, p in zip(result.indices, result.probabilities)))
    return 0


def _checkpoint_classifier(args: argparse.Namespace) -> tuple:
    """(network, its name, number of classes, recorded class names) for --ckpt_path / --pretrained."""
    if not args.model:
        raise ValueError("give --model NAME (e.g. shufflenet_v2_x1_0) with --ckpt_path or --pretrained")
    num_classes, recorded_names = args.num_classes, None
    if args.ckpt_path:
        file_classes, recorded_names = checkpoint_classes(args.ckpt_path, ema=args.ema)
        num_classes = num_classes or file_classes
    num_classes = num_classes or 1000
    net = create_model(args.model, num_classes=num_classes, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding)
    return net, args.model, num_classes, recorded_names


def _preprocessing(args: argparse.Namespace, exported: Optional[ExportedModel]) -> tuple:
    """(image size, crop_pct, interpolation, mean, std): the options, else the file's record, else defaults;
    a size the file cannot take is an error."""
    info = exported.info if exported is not None else None
    size = args.image_resize or (info and info.image_size) or (exported.input_shape[1] if exported else 224)
    crop_pct = args.crop_pct or (info and info.crop_pct) or 0.875
    interpolation = args.interpolation or (info and info.interpolation) or "bilinear"
    mean = (info and info.mean) or IMAGENET_MEAN
    std = (info and info.std) or IMAGENET_STD
    if exported is not None:
        exported.check_fits(size, args.num_classes)
    return size, crop_pct, interpolation, mean, std


def _exported_classifier(args: argparse.Namespace, exported: ExportedModel) -> tuple:
    """(model, its name, number of classes, recorded class names) for --model_file."""
    for option in ("ema", "pool_padding"):
        if getattr(args, option):
            raise ValueError(f"--{option} applies to checkpoints, not to --model_file (the file holds the network)")
    if args.model and exported.info.model and args.model != exported.info.model:
        raise ValueError(f"{exported.path} was exported from {exported.info.model}, not {args.model}: leave "
                         f"--model out")
    num_classes = exported.num_classes or args.num_classes
    if num_classes is None:
        num_classes = exported(np.zeros((1, *exported.input_shape), np.float32)).shape[1]
    name = f"{exported.path.name} ({args.model or exported.info.model or 'model not recorded'}, {describe(exported)})"
    return exported, name, num_classes, recorded_class_names(exported)


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
