"""Evaluate a checkpoint or an exported model on an ImageNet-style folder: top-1 / top-5 accuracy and loss.

    python validate.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt \
        --data_dir /data/imagenet [--val_split val] [--batch_size 64] [--device Ascend]
    python validate.py --config configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml --ckpt_path run/...-best.ckpt
    python validate.py --model_file shufflenet_v2_x1_0-int8.onnx --data_dir /data/imagenet   # or a .mindir

Options are MindCV's config keys (a training YAML works as --config; its evaluation keys are used:
model, data_dir, val_split, batch_size, image_resize, crop_pct, interpolation, mean, std, ...).
Preprocessing is MindCV's: resize the short side to image_resize / crop_pct, center crop, normalize; the
values not given are those the checkpoint records it was trained with (train.py writes them), else the
model's (``model_info(model).preprocessing``). Without --model, a checkpoint written by train.py names its
model, as in infer.py and export.py. An exported file (--model_file: .onnx through onnxruntime,
.mindir through MindSpore) runs through the same pipeline; the model name, class count and the
preprocessing export.py recorded in it are used for the keys not given on the command line or in --config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.cli import (
    PREPROCESSING_OPTIONS,
    add_fold_argument,
    eval_preprocessing,
    exported_preprocessing,
    refuse_feature_extractor_checkpoint,
)
from mindcv_shufflenet.config import Config, ConfigError, build_parser, load_config
from mindcv_shufflenet.data import create_eval_dataset, find_classes
from mindcv_shufflenet.data.folders import split_folder
from mindcv_shufflenet.deploy import ExportedModel, describe, load_exported
from mindcv_shufflenet.engine import evaluate
from mindcv_shufflenet.engine.evaluate import EvalResult
from mindcv_shufflenet.models import prepare_for_inference
from mindcv_shufflenet.models.weights import checkpoint_classes, recorded_model

EVAL_KEYS = ("model", "ckpt_path", "pretrained", "data_dir", "val_split", "num_classes", "in_channels",
             "batch_size", "image_resize", "crop_pct", "interpolation", "mean", "std", "pool_padding",
             "num_parallel_workers", "device_target", "mode", "log_interval", "val_amp_level", "seed")


# Evaluation defaults that differ from training's.
EVAL_DEFAULTS = {"log_interval": 0, "batch_size": 64}


def parse_config(argv: Optional[List[str]] = None) -> Tuple[Config, argparse.Namespace, str]:
    parser = build_parser(__doc__.splitlines()[0], keys=EVAL_KEYS)
    parser.add_argument("--ema", dest="ema_weights", action="store_true",
                        help="evaluate the checkpoint's EMA copy (ema.* weights)")
    parser.add_argument("--model_file", default=None, metavar="FILE",
                        help="an exported model (.onnx, .mindir) to evaluate instead of a checkpoint")
    add_fold_argument(parser)
    parser.add_argument("--device", dest="device_alias", default=None, help="same as --device_target")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON here")
    args, _ = parser.parse_known_args(argv)
    overrides = {"device_target": args.device_alias} if args.device_alias else {}
    given = {k for k in (*EVAL_DEFAULTS, *PREPROCESSING_OPTIONS, "model", "num_classes") if _given(argv, k)}
    if args.config:
        given |= _yaml_keys(args.config)
    args.exported = load_exported(args.model_file) if args.model_file else None
    if args.exported is not None:
        overrides.update(recorded_identity(args.exported, given))
    elif "model" not in given and args.ckpt_path:  # a checkpoint written by train.py names its model
        named = recorded_model(args.ckpt_path)
        if named:
            overrides["model"] = named
    cfg = load_config(argv, parser=parser, **overrides)
    given_pre = {k: getattr(cfg, k) for k in PREPROCESSING_OPTIONS if k in given}
    if args.exported is not None:
        check_model_file_args(cfg, args)
        # The preprocessing: what was given, else what the file records, else the model's (see cli.py).
        pre = exported_preprocessing(args.exported, cfg.model, given_pre)
    elif not cfg.ckpt_path and not cfg.pretrained:
        raise ConfigError("give --ckpt_path FILE (or --pretrained for MindCV's released weights, or --model_file "
                          "for an exported model)")
    else:
        refuse_feature_extractor_checkpoint(cfg.ckpt_path or None, "validate.py")
        # The preprocessing: what was given, else what the checkpoint records, else the model's (see cli.py).
        pre = eval_preprocessing(cfg.model, cfg.ckpt_path or None, given_pre)
    cfg = cfg.replace(**{k: v for k, v in EVAL_DEFAULTS.items() if k not in given},
                      image_resize=pre.input_size, crop_pct=pre.crop_pct, interpolation=pre.interpolation,
                      mean=pre.mean, std=pre.std)
    return cfg, args, pre.channel_order


def recorded_identity(exported: ExportedModel, given: set) -> dict:
    """The model name and class count an exported file records, for the keys not given on the command line
    or in --config."""
    if exported.info.model is None and "model" not in given:
        raise ConfigError(f"{exported.path} records no model name: give --model NAME (the name is only "
                          f"reported; the file holds the network)")
    recorded = {"model": exported.info.model, "num_classes": exported.num_classes or exported.info.num_classes}
    return {key: value for key, value in recorded.items() if value is not None and key not in given}


def check_model_file_args(cfg: Config, args: argparse.Namespace) -> None:
    """--model_file replaces the checkpoint options; the file's recorded model must be the one named."""
    if cfg.ckpt_path or cfg.pretrained or args.ema_weights:
        raise ConfigError("give either --model_file or a checkpoint (--ckpt_path, --pretrained, --ema), not both")
    if args.no_fold_bn:
        raise ConfigError("--no_fold_bn applies to checkpoints, not to --model_file (the file holds the network)")
    if cfg.val_amp_level != "O0":
        raise ConfigError("val_amp_level applies to checkpoints; an exported file runs at the precision it was "
                          "exported in: leave val_amp_level out")
    info = args.exported.info
    if info.model is not None and info.model != cfg.model:
        raise ConfigError(f"{args.exported.path} was exported from {info.model}, not {cfg.model}: leave --model "
                          f"out (or use a config for {info.model})")


def _given(argv: Optional[List[str]], key: str) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv)


def _yaml_keys(path: str) -> set:
    from mindcv_shufflenet.config import load_yaml

    return set(load_yaml(path))


def main(argv: Optional[List[str]] = None) -> int:
    cfg, args, channel_order = parse_config(argv)
    device = runtime.resolve_device(cfg.device_target)
    runtime.init_runtime(device=device, mode=cfg.mode)
    if args.exported is not None:
        result = validate_model_file(cfg, args.exported, channel_order)
        report(cfg, result, args.json, f"{args.exported.path.name} ({cfg.model}, {describe(args.exported)})",
               {"model_file": str(args.exported.path), "format": args.exported.file_format,
                "quantization": args.exported.info.quantization})
        return 0
    num_classes = cfg.num_classes
    if num_classes is None:
        num_classes = 1000 if cfg.pretrained else (checkpoint_classes(cfg.ckpt_path, ema=args.ema_weights)[0] or 1000)
    dataset = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize, cfg.crop_pct,
                                  cfg.interpolation, cfg.num_parallel_workers, num_classes, mean=cfg.mean,
                                  std=cfg.std, channel_order=channel_order)
    net = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels, pretrained=cfg.pretrained,
                       checkpoint_path=cfg.ckpt_path or None, ema=args.ema_weights, pool_padding=cfg.pool_padding)
    prepare_for_inference(net, fold_bn=not args.no_fold_bn)  # before amp: folded in float32
    if cfg.val_amp_level != "O0":  # MindCV's key for the precision of evaluation (default O0: float32)
        import mindspore as ms

        ms.amp.auto_mixed_precision(net, cfg.val_amp_level)
    result = evaluate(net, dataset, log_every=cfg.log_interval)
    report(cfg, result, args.json, cfg.model, {"checkpoint": cfg.ckpt_path or "pretrained", "ema": args.ema_weights,
                                                 "fold_bn": not args.no_fold_bn})
    return 0


def validate_model_file(cfg: Config, exported: ExportedModel, channel_order: str) -> EvalResult:
    """Evaluate an exported file after checking that its input size and classes fit the data."""
    folder = split_folder(cfg.data_dir, cfg.val_split, "val_split")
    exported.check_fits(cfg.image_resize, cfg.num_classes, len(find_classes(folder)), folder)
    dataset = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize, cfg.crop_pct,
                                  cfg.interpolation, cfg.num_parallel_workers, exported.num_classes or cfg.num_classes,
                                  mean=cfg.mean, std=cfg.std, channel_order=channel_order)
    return evaluate(exported, dataset, log_every=cfg.log_interval)


def report(cfg: Config, result: EvalResult, json_path: Optional[str], name: str, source: dict) -> None:
    """The result line, and the JSON record with ``--json``."""
    print(f"{name}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  loss {result.loss:.4f}  "
          f"({result.images} images in {result.seconds:.1f} s, {result.images_per_second:.1f} img/s after the "
          f"first batch)")
    if json_path:
        record = {"model": cfg.model, **source, "data": str(Path(cfg.data_dir) / cfg.val_split), "top1": result.top1,
                  "top5": result.top5, "loss": result.loss, "images": result.images, "seconds": result.seconds}
        Path(json_path).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
