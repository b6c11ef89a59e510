"""What the command lines that run one trained network (``infer.py``, ``export.py``) share: the options that
name the model and its weights, and building the network from them."""

from __future__ import annotations

import argparse
from typing import List, Optional, Tuple

from mindspore import nn

from .constants import POOL_PADDINGS
from .models import create_model
from .models.weights import checkpoint_classes


def add_model_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--model``, ``--ckpt_path`` or ``--pretrained``, ``--ema``, ``--num_classes``, ``--pool_padding``,
    ``--device`` and ``--debug``; ``verb`` says what the command does with the weights ("export")."""
    parser.add_argument("--model", required=True, help="a name from list_models(), e.g. shufflenet_v2_x1_0")
    weights = parser.add_mutually_exclusive_group(required=True)
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
