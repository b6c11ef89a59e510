"""What the command lines that run one trained network (``infer.py``, ``export.py``) share: the options that
name the model and its weights, building the network from them, and the preprocessing its input needs
(also for an exported file, ``--model_file``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any, Callable, List, Mapping, Optional, Tuple

from mindspore import nn

from .constants import POOL_PADDINGS
from .models import create_model, list_models, model_info
from .models.metadata import Preprocessing
from .models.weights import checkpoint_classes, recorded_features_only, recorded_preprocessing


def add_model_arguments(parser: argparse.ArgumentParser, verb: str, model_file: bool = False) -> None:
    """``--model``, ``--ckpt_path`` or ``--pretrained``, ``--ema``, ``--num_classes``, ``--pool_padding``,
    ``--device`` and ``--debug``; ``verb`` says what the command does with the weights ("export").
    ``model_file``: also ``--model_file``, an exported file used instead of a checkpoint."""
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="a recipe or a run's config.yaml: its model, ckpt_path, num_classes, pool_padding and "
                             "preprocessing keys are the defaults of the options not given")
    parser.add_argument("--model", default=None, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--ckpt_path", help="checkpoint (this project's, MindCV's or a converted one)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    if model_file:
        weights.add_argument("--model_file", help="an exported model (.onnx through onnxruntime, .mindir through "
                             "MindSpore) instead of a checkpoint; its recorded model name, classes and "
                             "preprocessing are the defaults")
    parser.add_argument("--ema", action="store_true", help=f"{verb} the checkpoint's EMA weights")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="default: the checkpoint's (1000 with --pretrained)")
    parser.add_argument("--pool_padding", default=None, choices=POOL_PADDINGS,
                        help="default: the checkpoint's recorded setting, else the model's")
    parser.add_argument("--device", "--device_target", dest="device", default="auto",
                        help="CPU, Ascend, GPU or auto (Ascend when available, else CPU)")
    parser.add_argument("--debug", action="store_true", help="show a traceback instead of a one-line error")


def add_fold_argument(parser: argparse.ArgumentParser) -> None:
    """``--no_fold_bn``: the commands that run a loaded network fold BatchNorm by default (faster, same logits)."""
    parser.add_argument("--no_fold_bn", action="store_true",
                        help="keep BatchNorm as separate ops (default: folded into the convolutions after the "
                             "weights are loaded, the same logits to float rounding; the checkpoint is not changed)")


# Keys of a YAML config that fill options of these commands, when not given on the command line.
CONFIG_DEFAULTS = ("model", "num_classes", "pool_padding", "image_resize", "crop_pct", "interpolation",
                   "mean", "std")


def resolve_model_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options not given from ``--config`` (checked as train.py checks it), then require a model and
    exactly one source of weights (a checkpoint, the released weights or, where offered, ``--model_file``)."""
    model_file = getattr(args, "model_file", None)
    if model_file:
        for option in ("ema", "pool_padding", "no_fold_bn"):
            if getattr(args, option, None):
                raise ValueError(f"--{option} applies to checkpoints, not to --model_file (the file holds the "
                                 f"network)")
    if args.config:
        from .config import load_config, load_yaml

        cfg = load_config(["--config", args.config])
        in_yaml = set(load_yaml(args.config))
        for key in CONFIG_DEFAULTS:
            # A preprocessing key the YAML does not set is left to the checkpoint's record (or the file's, or
            # the model's), as in validate.py: not MindCV's default, which a BGR 0-255 model was not trained with.
            if key in PREPROCESSING_OPTIONS and key not in in_yaml:
                continue
            if getattr(args, key, None) is None and not (model_file and key == "pool_padding"):
                setattr(args, key, getattr(cfg, key))
        if not model_file and not args.ckpt_path and not args.pretrained:
            args.ckpt_path, args.pretrained = cfg.ckpt_path or None, bool(cfg.pretrained)
    if model_file:  # the model name and classes are the file's (checked when it is loaded)
        return args
    if not args.model and args.ckpt_path:  # a checkpoint written by train.py names its model
        from .models.weights import recorded_model

        args.model = recorded_model(args.ckpt_path)
    if not args.model:
        raise ValueError("give --model NAME (or --config with a model key; checkpoints written by train.py "
                         "name their model themselves)")
    if not args.ckpt_path and not args.pretrained:
        raise ValueError("give --ckpt_path FILE (or --pretrained for MindCV's released weights)")
    return args


def model_from_arguments(args: argparse.Namespace) -> Tuple[nn.Cell, Optional[List[str]]]:
    """The network :func:`add_model_arguments`' options name, with its weights, and the class names its
    checkpoint records (None if none). Without ``--num_classes`` the checkpoint's classifier decides."""
    num_classes, recorded_names = args.num_classes, None
    if args.ckpt_path:
        file_classes, recorded_names = checkpoint_classes(args.ckpt_path, ema=args.ema)
        num_classes = num_classes or file_classes
    features = {"features_only": True, "out_indices": args.out_indices} if getattr(args, "features_only", False) else {}
    net = create_model(args.model, num_classes=num_classes or 1000, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding, **features)
    return net, recorded_names


def refuse_feature_extractor_checkpoint(ckpt_path: Optional[str], command: str) -> None:
    """A one-line ValueError if ``ckpt_path`` holds a ``features_only`` network's weights (no classifier),
    which ``command`` (validate.py, infer.py) cannot use."""
    if ckpt_path and recorded_features_only(ckpt_path):
        raise ValueError(f"{ckpt_path} holds a features_only network's weights (no classifier head): {command} "
                         f"needs a classifier's checkpoint")


# The evaluation preprocessing, by the names the command lines use for it -> Preprocessing's fields.
PREPROCESSING_OPTIONS = {"image_resize": "input_size", "crop_pct": "crop_pct", "interpolation": "interpolation",
                         "mean": "mean", "std": "std"}


def eval_preprocessing(model: str, ckpt_path: Optional[str], given: Mapping[str, Any],
                       note: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Preprocessing:
    """How to preprocess images for a network: the options given (``image_resize``, ``crop_pct``, ...; None:
    not given), else what the checkpoint records it was trained with, else the model's metadata.

    A given option that differs from the checkpoint's record is used, with a note naming both: a network
    fed other inputs than it was trained on classifies them silently wrong.
    """
    recorded = recorded_preprocessing(ckpt_path) if ckpt_path else None
    chosen = recorded or model_info(model).preprocessing
    changes = {}
    for option, name in PREPROCESSING_OPTIONS.items():
        value = given.get(option)
        if value is None:
            continue
        value = tuple(float(v) for v in value) if name in ("mean", "std") else value
        if recorded is not None and value != getattr(recorded, name):
            note(f"note: --{option} {_shown(value)} differs from the {_shown(getattr(recorded, name))} that "
                 f"{ckpt_path} was trained with")
        changes[name] = value
    return replace(chosen, **changes)


def exported_preprocessing(exported: Any, model: Optional[str], given: Mapping[str, Any],
                           note: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Preprocessing:
    """How to preprocess images for an exported file (``deploy.ExportedModel``): the options given, else what
    export.py recorded in the file, else the model's metadata (MindCV's defaults for an unknown model).

    A given crop_pct, interpolation, mean or std that differs from the record is used, with a warning; the
    input size and classes are checked against the file itself (``ExportedModel.check_fits``).
    """
    info = exported.info
    model = model or info.model
    base = model_info(model).preprocessing if model in list_models() else Preprocessing()
    recorded = {"input_size": info.image_size or exported.input_shape[1], "crop_pct": info.crop_pct,
                "interpolation": info.interpolation, "channel_order": info.channel_order, "mean": info.mean,
                "std": info.std}
    changes = {name: value for name, value in recorded.items() if value is not None}
    for option, name in PREPROCESSING_OPTIONS.items():
        value = given.get(option)
        if value is None:
            continue
        value = tuple(float(v) for v in value) if name in ("mean", "std") else value
        if name != "input_size" and name in changes and _differs(value, changes[name]):
            shown = [round(v, 4) for v in changes[name]] if isinstance(value, tuple) else changes[name]
            note(f"warning: {exported.path} records {option} {shown}; using the {option} given instead")
        changes[name] = value
    try:
        return replace(base, **changes)
    except ValueError as err:
        raise ValueError(f"{exported.path}: its preprocessing is not valid ({err})") from None


def _differs(given: Any, recorded: Any) -> bool:
    if isinstance(recorded, tuple):
        return len(given) != len(recorded) or any(abs(a - b) > 1e-6 for a, b in zip(given, recorded))
    return given != recorded


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return str(value)
