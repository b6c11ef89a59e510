"""What the command lines that run one trained network (``infer.py``, ``export.py``) share: the options that
name the model and its weights, and building the network from them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any, Callable, List, Mapping, Optional, Tuple

from mindspore import nn

from .constants import POOL_PADDINGS
from .models import create_model, model_info
from .models.metadata import Preprocessing
from .models.weights import checkpoint_classes, recorded_preprocessing


def add_model_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--model``, ``--ckpt_path`` or ``--pretrained``, ``--ema``, ``--num_classes``, ``--pool_padding``,
    ``--device`` and ``--debug``; ``verb`` says what the command does with the weights ("export")."""
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="a recipe or a run's config.yaml: its model, ckpt_path, num_classes, pool_padding and "
                             "preprocessing keys are the defaults of the options not given")
    parser.add_argument("--model", default=None, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--ckpt_path", help="checkpoint (this project's, MindCV's or a converted one)")
    weights.add_argument("--pretrained", action="store_true", help="MindCV's released weights (local copy)")
    parser.add_argument("--ema", action="store_true", help=f"{verb} the checkpoint's EMA weights")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="default: the checkpoint's (1000 with --pretrained)")
    parser.add_argument("--pool_padding", default=None, choices=POOL_PADDINGS,
                        help="default: the checkpoint's recorded setting, else the model's")
    parser.add_argument("--device", "--device_target", dest="device", default="auto",
                        help="CPU, Ascend, GPU or auto (Ascend when available, else CPU)")
    parser.add_argument("--debug", action="store_true", help="show a traceback instead of a one-line error")


# Keys of a YAML config that fill options of these commands, when not given on the command line.
CONFIG_DEFAULTS = ("model", "num_classes", "pool_padding", "image_resize", "crop_pct", "interpolation",
                   "mean", "std")


def resolve_model_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options not given from ``--config`` (checked as train.py checks it), then require a model and
    exactly one source of weights."""
    if args.config:
        from .config import load_config

        cfg = load_config(["--config", args.config])
        for key in CONFIG_DEFAULTS:
            if getattr(args, key, None) is None:
                setattr(args, key, getattr(cfg, key))
        if not args.ckpt_path and not args.pretrained:
            args.ckpt_path, args.pretrained = cfg.ckpt_path or None, bool(cfg.pretrained)
    if not args.model and args.ckpt_path:  # a checkpoint written by train.py names its model
        from .models.weights import read_checkpoint_with_meta

        args.model = read_checkpoint_with_meta(args.ckpt_path)[1].get("model")
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
    net = create_model(args.model, num_classes=num_classes or 1000, pretrained=args.pretrained,
                       checkpoint_path=args.ckpt_path, ema=args.ema, pool_padding=args.pool_padding)
    return net, recorded_names


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


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return str(value)
