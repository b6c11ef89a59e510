"""Evaluate a checkpoint on an ImageNet-style folder: top-1 / top-5 accuracy and loss.

    python validate.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt \
        --data_dir /data/imagenet [--val_split val] [--batch_size 64] [--device Ascend]
    python validate.py --config configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml --ckpt_path run/...-best.ckpt

Options are MindCV's config keys (a training YAML works as --config; its evaluation keys are used:
model, data_dir, val_split, batch_size, image_resize, crop_pct, interpolation, mean, std, ...).
Preprocessing is MindCV's: resize the short side to image_resize / crop_pct, center crop, normalize; the
values not given are the model's (``model_info(model).preprocessing``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.models import model_info
from mindcv_shufflenet.config import Config, ConfigError, build_parser, load_config
from mindcv_shufflenet.data import create_eval_dataset
from mindcv_shufflenet.engine import evaluate
from mindcv_shufflenet.models.weights import checkpoint_classes

EVAL_KEYS = ("model", "ckpt_path", "pretrained", "data_dir", "val_split", "num_classes", "in_channels",
             "batch_size", "image_resize", "crop_pct", "interpolation", "mean", "std", "pool_padding",
             "num_parallel_workers", "device_target", "mode", "log_interval", "val_amp_level", "seed")


def parse_config(argv: Optional[List[str]] = None) -> Tuple[Config, argparse.Namespace]:
    parser = build_parser(__doc__.splitlines()[0], keys=EVAL_KEYS)
    parser.add_argument("--ema", dest="ema_weights", action="store_true",
                        help="evaluate the checkpoint's EMA copy (ema.* weights)")
    parser.add_argument("--device", dest="device_alias", default=None, help="same as --device_target")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON here")
    args, _ = parser.parse_known_args(argv)
    overrides = {"device_target": args.device_alias} if args.device_alias else {}
    cfg = load_config(argv, parser=parser, **overrides)
    # Evaluation defaults that differ from training's: the preprocessing the model's weights expect.
    pre = model_info(cfg.model).preprocessing
    defaults = {"log_interval": 0, "batch_size": 64, "image_resize": pre.input_size, "crop_pct": pre.crop_pct,
                "interpolation": pre.interpolation, "mean": pre.mean, "std": pre.std}
    given = {k for k in defaults if _given(argv, k)}
    if cfg.source:
        given |= {k for k in defaults if k in _yaml_keys(cfg.source)}
    cfg = cfg.replace(**{k: v for k, v in defaults.items() if k not in given})
    if not cfg.ckpt_path and not cfg.pretrained:
        raise ConfigError("give --ckpt_path FILE (or --pretrained for MindCV's released weights)")
    return cfg, args


def _given(argv: Optional[List[str]], key: str) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv)


def _yaml_keys(path: str) -> set:
    from mindcv_shufflenet.config import load_yaml

    return set(load_yaml(path))


def main(argv: Optional[List[str]] = None) -> int:
    cfg, args = parse_config(argv)
    device = runtime.resolve_device(cfg.device_target)
    runtime.init_runtime(device=device, mode=cfg.mode)
    num_classes = cfg.num_classes
    if num_classes is None:
        num_classes = 1000 if cfg.pretrained else (checkpoint_classes(cfg.ckpt_path, ema=args.ema_weights)[0] or 1000)
    dataset = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize, cfg.crop_pct,
                                  cfg.interpolation, cfg.num_parallel_workers, num_classes, mean=cfg.mean,
                                  std=cfg.std, channel_order=model_info(cfg.model).preprocessing.channel_order)
    net = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels, pretrained=cfg.pretrained,
                       checkpoint_path=cfg.ckpt_path or None, ema=args.ema_weights, pool_padding=cfg.pool_padding)
    if cfg.val_amp_level != "O0":  # MindCV's key for the precision of evaluation (default O0: float32)
        import mindspore as ms

        ms.amp.auto_mixed_precision(net, cfg.val_amp_level)
    result = evaluate(net, dataset, log_every=cfg.log_interval)
    print(f"{cfg.model}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  loss {result.loss:.4f}  "
          f"({result.images} images in {result.seconds:.1f} s, {result.images_per_second:.1f} img/s after the "
          f"first batch)")
    if args.json:
        record = {"model": cfg.model, "checkpoint": cfg.ckpt_path or "pretrained", "ema": args.ema_weights,
                  "data": str(Path(cfg.data_dir) / cfg.val_split), "top1": result.top1, "top5": result.top5,
                  "loss": result.loss, "images": result.images, "seconds": result.seconds}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
