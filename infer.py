"""Classify images: top-k classes with probabilities for image files and folders.

    python infer.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt cat.jpg photos/
    # cat.jpg: tabby 62.31%, tiger cat 21.04%, Egyptian cat 10.12%, lynx 1.20%, tiger 0.43%   (made-up figures)
    python infer.py --model_file shufflenet_v2_x1_0-int8.onnx cat.jpg     # an exported .onnx or .mindir

Preprocessing is validate.py's: resize the short side to image_resize / crop_pct, center crop, normalize,
with what the checkpoint records it was trained with (train.py writes it), else the model's settings
(``model_info(model).preprocessing``), where no option is given. ``--config`` takes a recipe or a run's
config.yaml, as validate.py does: its model, weights, class count and preprocessing fill what is not given. Class names:
--class_names (a file with one name per line, or a dataset folder whose sorted subfolders are the classes),
else those recorded in the checkpoint, else a classes.txt beside it, else ImageNet's for 1000 classes, else
class indices. The number of classes is read from the checkpoint.
With --model_file, the model name, classes, class names and preprocessing (image size, crop_pct,
interpolation, mean/std, channel order) come from what export.py recorded in the file, unless given here.

    python infer.py --model shufflenet_v2_x1_0 --ckpt_path w.ckpt photos/ --features photos.npy

--features also writes each image's pooled features (what the classifier reads: ``forward_head(...,
pre_logits=True)``, e.g. 1024 values for ShuffleNetV2) as one float32 [images, features] .npy file, one row
per image in the order the predictions are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Tuple

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import runtime
from mindcv_shufflenet.cli import (
    PREPROCESSING_OPTIONS,
    add_fold_argument,
    add_model_arguments,
    eval_preprocessing,
    exported_preprocessing,
    model_from_arguments,
    refuse_feature_extractor_checkpoint,
    resolve_model_arguments,
)
from mindcv_shufflenet.constants import INTERPOLATIONS
from mindcv_shufflenet.data.transforms import eval_transforms
from mindcv_shufflenet.deploy import (
    ExportedModel,
    check_embeddings_path,
    describe,
    find_images,
    load_exported,
    predict,
    recorded_class_names,
    resolve_class_names,
    save_embeddings,
)
from mindcv_shufflenet.models import prepare_for_inference


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="image files and folders (searched recursively)")
    add_model_arguments(p, "use", model_file=True)
    add_fold_argument(p)
    p.add_argument("--class_names", default=None, help="file with one class name per line, or a dataset folder")
    p.add_argument("--top_k", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--image_resize", type=int, default=None,
                   help="crop size fed to the network (default: the checkpoint's or file's record, else the "
                   "model's)")
    p.add_argument("--crop_pct", type=float, default=None, help="default: recorded, else the model's")
    p.add_argument("--interpolation", default=None, choices=INTERPOLATIONS, help="default: recorded, else the model's")
    p.add_argument("--mode", default="graph", help="graph or pynative")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--features", default=None, metavar="FILE.npy",
                   help="also write the images' pooled features (embeddings) here, one row per image in the order "
                        "printed (needs a checkpoint, not --model_file)")
    args = resolve_model_arguments(p.parse_args(argv))
    if args.features:
        if args.model_file:
            raise ValueError("--features needs the network (--ckpt_path or --pretrained): an exported --model_file "
                             "outputs logits only")
        check_embeddings_path(args.features)
    refuse_feature_extractor_checkpoint(args.ckpt_path, "infer.py")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    images = find_images(args.images)
    exported = load_exported(args.model_file) if args.model_file else None
    given = {option: getattr(args, option, None) for option in PREPROCESSING_OPTIONS}
    if exported is not None:
        pre = exported_preprocessing(exported, args.model, given)
        exported.check_fits(pre.input_size, args.num_classes)
    else:
        pre = eval_preprocessing(args.model, args.ckpt_path, given)
    transforms = eval_transforms(pre.input_size, pre.crop_pct, pre.interpolation, pre.mean, pre.std,
                                 pre.channel_order)
    runtime.init_runtime(device=runtime.resolve_device(args.device), mode=args.mode)
    if exported is not None:
        net, name, num_classes, recorded_names = _exported_classifier(args, exported)
    else:
        net, recorded_names = model_from_arguments(args)
        prepare_for_inference(net, fold_bn=not args.no_fold_bn)
        name, num_classes = args.model, net.num_classes
    names, origin = resolve_class_names(num_classes, args.class_names, recorded_names,
                                        args.ckpt_path or args.model_file,
                                        recorded_origin="the model file" if exported else "the checkpoint")
    if not args.json:
        print(f"{name}, {num_classes} classes (names: {origin}), {len(images)} image{'s' * (len(images) != 1)}")
    embeddings = []
    for result in predict(net, images, transforms, args.batch_size, args.top_k, embeddings=bool(args.features)):
        if result.embedding is not None:
            embeddings.append(result.embedding)
        if args.json:
            print(json.dumps({"image": str(result.path), "top_k": [
                {"index": i, "label": names[i], "probability": round(p, 6)}
                for i, p in zip(result.indices, result.probabilities)]}))
        else:
            print(f"{result.path}: " + ", ".join(f"{names[i]} {100 * p:.2f}%"
                                                 for i, p in zip(result.indices, result.probabilities)))
    if args.features:
        path = save_embeddings(args.features, embeddings)
        print(f"features: {path} ({len(embeddings)} x {embeddings[0].shape[0]} float32, rows in the order above)",
              file=sys.stderr if args.json else sys.stdout)
    return 0


def _exported_classifier(args: argparse.Namespace, exported: ExportedModel) -> Tuple[ExportedModel, str, int,
                                                                                     Optional[List[str]]]:
    """(model, its name, number of classes, recorded class names) for --model_file."""
    if args.model and exported.info.model and args.model != exported.info.model:
        raise ValueError(f"{exported.path} was exported from {exported.info.model}, not {args.model}: leave "
                         f"--model out (or use a config for {exported.info.model})")
    num_classes = exported.num_classes or args.num_classes
    if num_classes is None:
        num_classes = exported(np.zeros((1, *exported.input_shape), np.float32)).shape[1]
    name = f"{exported.path.name} ({args.model or exported.info.model or 'model not recorded'}, {describe(exported)})"
    return exported, name, num_classes, recorded_class_names(exported)


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
