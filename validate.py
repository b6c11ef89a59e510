"""Evaluate a checkpoint or an exported model on an ImageNet-style folder: top-1 / top-5 accuracy and loss.

    python validate.py --model shufflenet_v2_x1_0 --ckpt_path shufflenet_v2_x1_0-0da4b7fa.ckpt \
        --data_dir /data/imagenet [--val_split val] [--batch_size 64] [--device Ascend]
    python validate.py --config configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml --ckpt_path run/...-best.ckpt
    python validate.py --model_file shufflenet_v2_x1_0-int8.onnx --data_dir /data/imagenet   # or a .mindir

Options are MindCV's config keys (a training YAML works as --config; its evaluation keys are used:
model, data_dir, val_split, batch_size, image_resize, crop_pct, interpolation, mean, std, ...).
Preprocessing is MindCV's: resize the short side to image_resize / crop_pct, center crop, normalize.
An exported file (--model_file: .onnx through onnxruntime, .mindir through MindSpore) runs through the
same pipeline; the model name, class count and the preprocessing export.py recorded in it are used for
the keys not given on the command line or in --config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.config import ConfigError, build_parser, load_config
from mindcv_shufflenet.data import create_eval_dataset, find_classes
from mindcv_shufflenet.data.folders import split_folder
from mindcv_shufflenet.deploy import ExportedModel, describe, load_exported
from mindcv_shufflenet.engine import evaluate
from mindcv_shufflenet.engine.evaluate import EvalResult
from mindcv_shufflenet.models.weights import read_checkpoint

EVAL_KEYS = ("model", "ckpt_path", "pretrained", "data_dir", "val_split", "num_classes", "in_channels",
             "batch_size", "image_resize", "crop_pct", "interpolation", "mean", "std", "pool_padding",
             "num_parallel_workers", "device_target", "mode", "log_interval", "val_amp_level", "seed")
# Config keys an exported file records (deploy.ExportInfo field -> config key).
RECORDED_KEYS = {"model": "model", "num_classes": "num_classes", "image_size": "image_resize", "crop_pct": "crop_pct",
                 "interpolation": "interpolation", "mean": "mean", "std": "std"}


def parse_config(argv: Optional[List[str]] = None):
    parser = build_parser(__doc__.splitlines()[0], keys=EVAL_KEYS)
    parser.add_argument("--ema", dest="ema_weights", action="store_true",
                        help="evaluate the checkpoint's EMA copy (ema.* weights)")
    parser.add_argument("--model_file", default=None, metavar="FILE",
                        help="an exported model (.onnx, .mindir) to evaluate instead of a checkpoint")
    parser.add_argument("--device", dest="device_alias", default=None, help="same as --device_target")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON here")
    args, _ = parser.parse_known_args(argv)
    overrides = {"device_target": args.device_alias} if args.device_alias else {}
    # Evaluation defaults that differ from training's.
    defaults = {"log_interval": 0, "batch_size": 64}
    given = {k for k in (*defaults, *RECORDED_KEYS.values()) if _given(argv, k)}
    if args.config:
        given |= {k for k in (*defaults, *RECORDED_KEYS.values()) if k in _yaml_keys(args.config)}
    args.exported = load_exported(args.model_file) if args.model_file else None
    if args.exported is not None:
        if args.exported.info.model is None and "model" not in given:
            raise ConfigError(f"{args.exported.path} records no model name: give --model NAME (the name is only "
                              f"reported; the file holds the network)")
        overrides.update(recorded_settings(args.exported, given))
    cfg = load_config(argv, parser=parser, **overrides)
    cfg = cfg.replace(**{k: v for k, v in defaults.items() if k not in given})
    if args.exported is not None:
        check_model_file_args(cfg, args)
    elif not cfg.ckpt_path and not cfg.pretrained:
        raise ConfigError("give --ckpt_path FILE (or --pretrained for MindCV's released weights, or --model_file "
                          "for an exported model)")
    return cfg, args


def recorded_settings(exported: ExportedModel, given: set) -> dict:
    """The config values an exported file records, for the keys not given on the command line or in --config."""
    settings = {}
    for field, key in RECORDED_KEYS.items():
        value = exported.num_classes if field == "num_classes" else getattr(exported.info, field)
        if value is not None and key not in given:
            settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


def _differs(given, recorded) -> bool:
    if isinstance(recorded, tuple):
        return len(given) != len(recorded) or any(abs(a - b) > 1e-6 for a, b in zip(given, recorded))
    return given != recorded


def check_model_file_args(cfg, args) -> None:
    """--model_file replaces the checkpoint options; the file's recorded model must be the one named."""
    if cfg.ckpt_path or cfg.pretrained or args.ema_weights:
        raise ConfigError("give either --model_file or a checkpoint (--ckpt_path, --pretrained, --ema), not both")
    if cfg.val_amp_level != "O0":
        raise ConfigError("val_amp_level applies to checkpoints; an exported file runs at the precision it was "
                          "exported in: leave val_amp_level out")
    info = args.exported.info
    if info.model is not None and info.model != cfg.model:
        raise ConfigError(f"{args.exported.path} was exported from {info.model}, not {cfg.model}: leave --model "
                          f"out (or use a config for {info.model})")
    for key in ("crop_pct", "interpolation", "mean", "std"):  # the size and classes are checked against the file
        recorded = getattr(info, key)
        if recorded is not None and _differs(getattr(cfg, key), recorded):
            shown = [round(v, 4) for v in recorded] if isinstance(recorded, tuple) else recorded
            print(f"warning: {args.exported.path} records {key} {shown}; using the {key} given instead",
                  file=sys.stderr)


def _given(argv: Optional[List[str]], key: str) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv)


def _yaml_keys(path: str) -> set:
    from mindcv_shufflenet.config import load_yaml

    return set(load_yaml(path))


def num_classes_of(ckpt_path: str) -> Optional[int]:
    """The classifier width stored in a checkpoint (None if it has no classifier)."""
    state = read_checkpoint(ckpt_path)
    weight = state.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None else None


def main(argv: Optional[List[str]] = None) -> int:
    cfg, args = parse_config(argv)
    device = runtime.resolve_device(cfg.device_target)
    runtime.init_runtime(device=device, mode=cfg.mode)
    if args.exported is not None:
        result = validate_model_file(cfg, args.exported)
        report(cfg, result, args.json, f"{args.exported.path.name} ({cfg.model}, {describe(args.exported)})",
               {"model_file": str(args.exported.path), "format": args.exported.file_format,
                "quantization": args.exported.info.quantization})
        return 0
    num_classes = cfg.num_classes
    if num_classes is None:
        num_classes = 1000 if cfg.pretrained else (num_classes_of(cfg.ckpt_path) or 1000)
    dataset = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize, cfg.crop_pct,
                                  cfg.interpolation, cfg.num_parallel_workers, num_classes, mean=cfg.mean,
                                  std=cfg.std)
    net = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels, pretrained=cfg.pretrained,
                       checkpoint_path=cfg.ckpt_path or None, ema=args.ema_weights, pool_padding=cfg.pool_padding)
    if cfg.val_amp_level != "O0":  # MindCV's key for the precision of evaluation (default O0: float32)
        import mindspore as ms

        ms.amp.auto_mixed_precision(net, cfg.val_amp_level)
    result = evaluate(net, dataset, log_every=cfg.log_interval)
    report(cfg, result, args.json, cfg.model, {"checkpoint": cfg.ckpt_path or "pretrained", "ema": args.ema_weights})
    return 0


def validate_model_file(cfg, exported: ExportedModel) -> EvalResult:
    """Evaluate an exported file after checking that its input size and classes fit the data."""
    folder = split_folder(cfg.data_dir, cfg.val_split, "val_split")
    exported.check_fits(cfg.image_resize, cfg.num_classes, len(find_classes(folder)), folder)
    dataset = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize, cfg.crop_pct,
                                  cfg.interpolation, cfg.num_parallel_workers, exported.num_classes or cfg.num_classes,
                                  mean=cfg.mean, std=cfg.std)
    return evaluate(exported, dataset, log_every=cfg.log_interval)


def report(cfg, result: EvalResult, json_path: Optional[str], name: str, source: dict) -> None:
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
