"""Training and evaluation configuration: MindCV's YAML keys, command-line overrides, checked up front.

A MindCV recipe runs unchanged: every key of MindCV's ``config.py`` is accepted with MindCV's meaning
(``mode: 0`` is graph mode, ``filter_bias_and_bn`` and ``dynamic_loss_scale`` from older MindCV map to
their newer forms). A key MindCV knows but this project cannot honour (``dataset_download: True``,
``layer_decay``, ...) is an error, never silently ignored. Unknown keys and wrong types are errors naming
the key and the closest valid one.

    cfg = load_config(["--config", "configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml", "--lr", "0.2"])
    cfg.lr, cfg.model, cfg.as_dict()
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from .constants import (
    AMP_LEVELS,
    CROP_PCT,
    DEFAULT_MILESTONES,
    DEVICES,
    IMAGE_CHANNELS,
    IMAGE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATION,
    INTERPOLATIONS,
    JIT_LEVELS,
    LOSSES,
    MODES,
    OPTIMIZERS,
    POOL_PADDINGS,
    SCHEDULERS,
    WEIGHT_DECAY_FILTERS,
    choose,
)


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and the fix."""


class _SourcedError(ConfigError):
    """A check about two keys whose message already says where each value came from (no file prefix)."""


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # bool | int | float | str | floats | ints | jitter
    default: Any
    help: str
    choices: Optional[Sequence[str]] = None
    optional: bool = False  # None (YAML null) allowed


def _o(name: str, kind: str, default: Any, help: str, choices: Optional[Sequence[str]] = None,
       optional: bool = False) -> Option:
    return Option(name, kind, default, help, tuple(choices) if choices else None, optional)


# The schema, grouped as in MindCV's config.py. Defaults are MindCV's, except where a comment says why.
OPTIONS: List[Option] = [
    # system
    _o("mode", "str", "graph", "graph or pynative (MindCV's 0 / 1 accepted)", MODES),
    _o("device_target", "str", "auto", "CPU, Ascend, GPU, or auto (Ascend when present, else CPU)",
       ("auto",) + DEVICES),
    _o("jit_level", "str", None, "graph compile level O0/O1 (default: O0 on Ascend, MindSpore's own on CPU; O2, "
                                 "the GE backend, is deprecated in MindSpore 2.10)", JIT_LEVELS, optional=True),
    _o("deterministic", "bool", False, "deterministic kernels (ms.set_deterministic): repeatable on Ascend, slower"),
    _o("distribute", "bool", False, "data parallel under msrun (one process per device)"),
    _o("val_while_train", "bool", False, "validate every val_interval epochs"),
    _o("val_interval", "int", 1, "epochs between validations"),
    _o("log_interval", "int", 100, "steps between training log lines"),
    _o("seed", "int", 42, "seeds Python, NumPy, MindSpore and the data pipeline"),
    _o("num_threads", "int", None, "CPU kernel threads (default: MindSpore's)", optional=True),
    _o("plot", "bool", True, "write a PNG of the loss, accuracy and LR curves at the end"),
    _o("compile_cache", "bool", True, "graph mode: save the compiled train step, and reuse it when a run with the "
                                      "same model, options, shapes, code and MindSpore starts again (a resume, "
                                      "an msrun relaunch)"),
    _o("compile_cache_dir", "str", "", "where compile_cache keeps its graphs (default: <ckpt_save_dir>/compile_cache;"
                                       " one folder per distinct graph)"),
    # dataset
    _o("dataset", "str", "imagenet", "imagenet or imagefolder: both read data_dir/<split>/<class>/<images>"),
    _o("data_dir", "str", "./", "dataset root"),
    _o("synthetic_data", "bool", False, "time the train step alone: every step gets one fixed random batch of "
                                        "batch_size images of image_resize pixels and num_classes classes (default "
                                        "1000), num_samples // batch_size steps per epoch (default 100); no file "
                                        "is read, no validation"),
    _o("train_split", "str", "train", "training subfolder of data_dir"),
    _o("val_split", "str", "val", "validation subfolder of data_dir"),
    _o("dataset_download", "bool", False, "MindCV's download switch; nothing is downloaded here"),
    # MindCV's default is 8 whatever the machine; null follows the cores this process may use instead.
    _o("num_parallel_workers", "int", None, "data workers per process; null: the cores this process may use "
                                            "(os.sched_getaffinity, which msrun --bind_core narrows), shared with "
                                            "the other ranks on the node", optional=True),
    _o("shuffle", "bool", True, "reshuffle the training set every epoch"),
    _o("num_samples", "int", None, "use only this many training images", optional=True),
    _o("batch_size", "int", 128, "images per device per step"),
    _o("drop_remainder", "bool", True, "drop the last incomplete training batch"),
    _o("aug_repeats", "int", 0, "repeated augmentation: copies of each image per epoch (0 or 1: off)"),
    # augmentation
    _o("image_resize", "int", IMAGE_SIZE, "training crop and evaluation size"),
    _o("scale", "floats", (0.08, 1.0), "RandomResizedCrop area range"),
    _o("ratio", "floats", (0.75, 1.333), "RandomResizedCrop aspect-ratio range"),
    _o("hflip", "float", 0.5, "horizontal flip probability"),
    _o("vflip", "float", 0.0, "vertical flip probability"),
    _o("color_jitter", "jitter", 0.4, "brightness/contrast/saturation[/hue] jitter (one value or a list)",
       optional=True),
    _o("interpolation", "str", INTERPOLATION, "resize interpolation", INTERPOLATIONS),
    _o("auto_augment", "str", None, "autoaug[-mstd0.5], autoaugr, randaug-m9-n2-mstd0.5, trivialaugwide",
       optional=True),
    _o("aug_splits", "int", 0, "MindCV's AugMix splits (not supported: 0)"),
    _o("re_prob", "float", 0.0, "random erasing probability"),
    _o("re_scale", "floats", (0.02, 0.33), "random erasing area range"),
    _o("re_ratio", "floats", (0.3, 3.3), "random erasing aspect-ratio range"),
    _o("re_value", "int", 0, "random erasing fill value"),
    _o("re_max_attempts", "int", 10, "random erasing attempts"),
    _o("mean", "floats", IMAGENET_MEAN, "per-channel mean (R, G, B), 0-255 scale"),
    _o("std", "floats", IMAGENET_STD, "per-channel std (R, G, B), 0-255 scale"),
    _o("crop_pct", "float", CROP_PCT, "evaluation: resize to image_resize / crop_pct, then center-crop"),
    _o("mixup", "float", 0.0, "mixup beta-distribution alpha (0: off)"),
    _o("cutmix", "float", 0.0, "cutmix beta-distribution alpha (0: off)"),
    _o("cutmix_prob", "float", 1.0, "probability of applying mixup/cutmix to a batch"),
    # model
    _o("model", "str", None, "model name, e.g. shufflenet_v2_x1_0 (required)", optional=True),
    _o("num_classes", "int", None, "classes (default: the number of class folders)", optional=True),
    _o("in_channels", "int", IMAGE_CHANNELS, f"image channels (images are decoded to RGB: {IMAGE_CHANNELS})"),
    _o("drop_rate", "float", None, "dropout before the classifier", optional=True),
    _o("drop_path_rate", "float", None, "MindCV's stochastic depth (ShuffleNet has none: leave null)",
       optional=True),
    _o("pool_padding", "str", None, "3x3 stride-2 pool padding: same (MindCV) or symmetric (default: what the "
                                   "checkpoint records, else same)", POOL_PADDINGS, optional=True),
    _o("pretrained", "bool", False, "start from MindCV's released weights (local copy)"),
    _o("ckpt_path", "str", "", "start from this checkpoint (with resume_opt: resume the run it saved)"),
    _o("resume_opt", "bool", False, "with ckpt_path: also restore optimizer, epoch, LR position, EMA"),
    _o("resume", "str", "", "'auto': continue from the newest complete checkpoint in ckpt_save_dir, if any;"
                           " or a checkpoint path"),
    _o("keep_checkpoint_max", "int", 10, "epoch checkpoints kept"),
    _o("ckpt_save_dir", "str", "./ckpt", "where checkpoints, config, metrics and plot go"),
    _o("ckpt_save_interval", "int", 1, "epochs between checkpoints"),
    _o("ckpt_save_policy", "str", "latest_k", "which epoch checkpoints are kept: latest_k or top_k (by top-1)",
       ("latest_k", "top_k"), optional=True),
    _o("epoch_size", "int", 90, "training epochs"),
    _o("dataset_sink_mode", "bool", True, "Ascend data sinking (CPU runs without it); needs drop_remainder: True"),
    _o("ema", "bool", False, "keep an exponential moving average of the weights"),
    _o("ema_decay", "float", 0.9999, "EMA decay"),
    _o("clip_grad", "bool", False, "clip gradients by global norm"),
    _o("clip_value", "float", 15.0, "global-norm clip threshold"),
    _o("layer_decay", "float", None, "MindCV's layer-wise LR decay (not for ShuffleNet: leave null)",
       optional=True),
    _o("gradient_accumulation_steps", "int", 1, "accumulate gradients of N batches per update"),
    # optimizer
    _o("opt", "str", "adam", "optimizer", OPTIMIZERS),
    _o("momentum", "float", 0.9, "momentum"),
    _o("weight_decay", "float", 1e-6, "weight decay"),
    _o("use_nesterov", "bool", False, "Nesterov momentum"),
    _o("weight_decay_filter", "str", "disable",
       "which parameters decay: disable (all), auto (MindCV: all but BatchNorm gamma/beta), norm_and_bias "
       "(all but norm layers and biases), official (conv and dense weights only, as the paper's code)",
       WEIGHT_DECAY_FILTERS),
    _o("filter_bias_and_bn", "bool", None, "older MindCV's switch: true = norm_and_bias (what it meant to "
                                           "do), false = auto",
       optional=True),
    # MindCV's default (1e-10) only reached RMSProp there; Adam's usual 1e-8 is the default here.
    _o("eps", "float", 1e-8, "Adam / AdamW epsilon"),
    # scheduler
    _o("scheduler", "str", "cosine_decay", "per-step LR schedule", SCHEDULERS),
    _o("lr", "float", 0.001, "peak learning rate"),
    _o("min_lr", "float", 1e-6, "final learning rate of decaying schedules"),
    _o("warmup_epochs", "int", 3, "linear warmup epochs"),
    _o("warmup_factor", "float", 0.0, "warmup starts at lr * warmup_factor"),
    _o("decay_epochs", "int", 100, "decay length (cosine) or step (step_decay) in epochs"),
    _o("decay_rate", "float", 0.9, "factor of step / multi-step / exponential decay"),
    _o("multi_step_decay_milestones", "ints", DEFAULT_MILESTONES, "epochs at which multi_step_decay decays"),
    _o("lr_epoch_stair", "bool", False, "change the LR once per epoch instead of every step"),
    _o("num_cycles", "int", 1, "cosine cycles"),
    _o("cycle_decay", "float", 1.0, "peak LR factor per cosine cycle"),
    # loss
    _o("loss", "str", "CE", "CE or BCE", LOSSES),
    _o("label_smoothing", "float", 0.0, "label smoothing"),
    _o("aux_factor", "floats", (0.0,), "auxiliary heads' loss weights (ShuffleNetV2.Large/ExLarge): one for every "
                                      "head, or one per head, deepest first (official: 0.7,0.5,0.3); 0: none"),
    _o("reduction", "str", "mean", "loss reduction", ("mean",)),
    # mixed precision
    _o("amp_level", "str", "O0", "O0 float32, O2 float16 except BatchNorm and loss, O3 float16", AMP_LEVELS),
    _o("val_amp_level", "str", "O0", "amp level of validation (O0: float32, whatever amp_level trains at)",
       AMP_LEVELS),
    _o("amp_cast_list", "str", None, "MindCV's custom cast list (not supported: leave null)", optional=True),
    _o("loss_scale_type", "str", "fixed", "fixed or dynamic (auto: dynamic)", ("fixed", "dynamic", "auto")),
    _o("loss_scale", "float", 1.0, "fixed scale, or the initial dynamic scale"),
    _o("dynamic_loss_scale", "bool", None, "older MindCV's switch for loss_scale_type: dynamic", optional=True),
    _o("drop_overflow_update", "bool", False, "with a fixed scale, skip updates whose gradients overflow"),
    _o("max_bad_steps", "int", 100, "stop after this many consecutive non-finite steps (dynamic scale halves "
                                    "on each)"),
    _o("eval_shuffle", "bool", False, "MindCV's switch; evaluation order never changes the result"),
]
OPTION_BY_NAME: Dict[str, Option] = {o.name: o for o in OPTIONS}
# The sections of the option reference (docs/training-options.md), as the comments above group OPTIONS: a
# section's title and its first key; it runs to the next section's first key.
OPTION_GROUPS: List[Tuple[str, str]] = [
    ("system", "mode"), ("dataset", "dataset"), ("augmentation", "image_resize"), ("model", "model"),
    ("optimizer", "opt"), ("scheduler", "scheduler"), ("loss", "loss"), ("mixed precision", "amp_level"),
]


def grouped_options() -> List[Tuple[str, List[Option]]]:
    """OPTIONS in the sections of ``OPTION_GROUPS``, in order; every option is in exactly one."""
    names = [o.name for o in OPTIONS]
    starts = [names.index(first) for _, first in OPTION_GROUPS]
    if starts[0] != 0 or starts != sorted(starts):
        raise ValueError(f"OPTION_GROUPS' first keys must start OPTIONS and follow its order, got {OPTION_GROUPS}")
    ends = starts[1:] + [len(OPTIONS)]
    return [(title, OPTIONS[start:end]) for (title, _), start, end in zip(OPTION_GROUPS, starts, ends)]


class Config:
    """Attribute access to validated settings; ``as_dict()`` for saving."""

    def __init__(self, values: Dict[str, Any], source: Optional[str] = None):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is read-only: use replace(...)")

    def replace(self, **changes: Any) -> Config:
        return finalize({**self._values, **changes}, self.source)

    def as_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._values.items()}


# ---------------------------------------------------------------------------------------------------
# parsing


def closest_key(name: str, keys: Sequence[str] = tuple(OPTION_BY_NAME)) -> str:
    close = difflib.get_close_matches(name, keys, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_yaml(path: str) -> Dict[str, Any]:
    """A config file as a mapping; errors name the file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a YAML text file (not UTF-8): give a .yaml recipe such as "
                          f"configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of key: value, got {type(data).__name__}")
    return data


def _str2bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser(description: str, keys: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """An argparse parser with ``--config``, ``--debug`` and ``--<key> VALUE`` for every schema key.

    Values stay strings here (lists as YAML: ``--scale "[0.08, 1.0]"`` or ``--scale 0.08,1.0``) and are
    converted and checked by :func:`finalize`, exactly as YAML values are.
    """
    p = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-c", "--config", default="", help="YAML file; command-line values override it")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    for option in OPTIONS:
        if keys is not None and option.name not in keys:
            continue
        if option.kind == "bool":
            p.add_argument(f"--{option.name}", nargs="?", const="true", default=None, metavar="BOOL",
                           help=option.help)
        else:
            p.add_argument(f"--{option.name}", default=None, metavar=option.kind.upper(), help=option.help)
    return p


def load_config(argv: Optional[Sequence[str]] = None, description: str = "mindcv-shufflenet",
                parser: Optional[argparse.ArgumentParser] = None, **overrides: Any) -> Config:
    """Defaults <- YAML file (``--config``) <- command line <- ``overrides``; validated."""
    parser = parser or build_parser(description)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = unknown[0]
        name = flag.lstrip("-").split("=")[0]
        # Suggest among the options this command takes (validate.py takes fewer than train.py).
        accepted = [o[2:] for o in parser._option_string_actions if o.startswith("--")]
        raise ConfigError(f"unknown option {flag}{closest_key(name, accepted)}")
    values: Dict[str, Any] = {}
    if args.config:
        values.update(load_yaml(args.config))
        for key in values:
            if key not in OPTION_BY_NAME:
                raise ConfigError(f"{args.config}: unknown key {key!r}{closest_key(key)}")
    for key, text in vars(args).items():
        if key in OPTION_BY_NAME and text is not None:
            values[key] = _from_cli_text(OPTION_BY_NAME[key], text)
    values.update(overrides)
    from_cli = {key for key, text in vars(args).items() if key in OPTION_BY_NAME and text is not None}
    return finalize(values, args.config or None, from_cli=from_cli | set(overrides))


def _from_cli_text(option: Option, text: str) -> Any:
    if option.kind == "bool":
        try:
            return _str2bool(text)
        except argparse.ArgumentTypeError as err:
            raise ConfigError(f"--{option.name}: {err}") from None
    if option.kind in ("floats", "ints", "jitter"):
        stripped = text.strip()
        if not stripped.startswith("[") and "," in stripped:
            stripped = f"[{stripped}]"
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            raise ConfigError(f"--{option.name}: cannot read {text!r} as a list, e.g. 0.08,1.0") from None
    if text.strip().lower() in ("none", "null") and option.optional:
        return None
    return text


def finalize(values: Dict[str, Any], source: Optional[str] = None, from_cli: frozenset | set = frozenset()) -> Config:
    """Fill defaults, translate MindCV's older keys, convert types and check every value.

    Errors start with ``source`` (the YAML file) unless the value they are about came from the command line
    (``from_cli``): the message then points at the place to fix."""
    def where_of(message: str) -> str:
        key = re.match(r"\w+", message)
        return "" if not source or (key and key[0] in from_cli) else f"{source}: "

    where = f"{source}: " if source else ""
    for key in values:
        if key not in OPTION_BY_NAME:
            raise ConfigError(f"{where}unknown key {key!r}{closest_key(key)}")
    values = dict(values)
    if "mode" in values and values["mode"] in (0, 1, "0", "1"):
        values["mode"] = "graph" if int(values["mode"]) == 0 else "pynative"
    out: Dict[str, Any] = {}
    for option in OPTIONS:
        raw = values.get(option.name, option.default)
        try:
            out[option.name] = _convert(option, raw)
        except ConfigError as err:
            raise ConfigError(f"{where_of(option.name)}{err}") from None
    def origin(key: str) -> str:
        """Where ``key``'s value came from, for messages about two keys that may come from different places."""
        if key in from_cli:
            return "from the command line"
        if key in values:
            return f"from {source}" if source else "given"
        return "the default"

    try:
        _translate_legacy(out, values)
        _check(out, origin)
    except _SourcedError as err:
        raise ConfigError(str(err)) from None
    except ConfigError as err:
        raise ConfigError(f"{where_of(str(err))}{err}") from None
    return Config(out, source)


def _convert(option: Option, raw: Any) -> Any:
    name, kind = option.name, option.kind
    if raw is None:
        if option.optional or option.default is None:
            return None
        raise ConfigError(f"{name} must not be empty (default {option.default!r})")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return _str2bool(raw)
            except argparse.ArgumentTypeError:
                pass
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if kind == "int":
        if isinstance(raw, bool):
            raise ConfigError(f"{name} must be an integer, got {raw!r}")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    if kind == "float":
        return _as_float(name, raw)
    if kind == "str":
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise ConfigError(f"{name} must be a string, got {raw!r}")
        text = str(raw)
        if option.choices:
            try:
                return choose(name, text, option.choices)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        return text
    if kind in ("floats", "ints"):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = [raw]
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(f"{name} must be a list of numbers, got {raw!r}")
        if kind == "ints":
            items = [_convert(Option(name, "int", 0, ""), v) for v in raw]
        else:
            items = [_as_float(name, v) for v in raw]
        return tuple(items)
    if kind == "jitter":
        if isinstance(raw, (list, tuple)):
            if len(raw) not in (3, 4):
                raise ConfigError(f"{name} must be one number or 3-4 numbers, got {raw!r}")
            return tuple(_as_float(name, v) for v in raw)
        return _as_float(name, raw)
    raise AssertionError(kind)


def _as_float(name: str, raw: Any) -> float:
    # YAML 1.1 reads 4e-5 (no dot) as a string: accept numeric strings.
    if isinstance(raw, bool):
        raise ConfigError(f"{name} must be a number, got {raw!r}")
    value: Optional[float] = None
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            pass
    if value is None:
        raise ConfigError(f"{name} must be a number, got {raw!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value


def _translate_legacy(out: Dict[str, Any], given: Dict[str, Any]) -> None:
    if out["filter_bias_and_bn"] is not None:
        if "weight_decay_filter" in given:
            raise ConfigError("give weight_decay_filter or the older filter_bias_and_bn, not both")
        out["weight_decay_filter"] = "norm_and_bias" if out["filter_bias_and_bn"] else "auto"
        out["filter_bias_and_bn"] = None  # translated: the saved config carries the newer key only
    if out["dynamic_loss_scale"] is not None:
        if "loss_scale_type" in given:
            raise ConfigError("give loss_scale_type or the older dynamic_loss_scale, not both")
        out["loss_scale_type"] = "dynamic" if out["dynamic_loss_scale"] else "fixed"
        out["dynamic_loss_scale"] = None
    if out["loss_scale_type"] == "auto":
        out["loss_scale_type"] = "dynamic"
    if out["scheduler"] == "warmup_cosine_decay":
        out["scheduler"] = "cosine_decay"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_supported(c: Dict[str, Any]) -> None:
    """MindCV keys this project does not implement, and combinations it cannot run: refused, not ignored."""
    _require(not c["dataset_download"], "dataset_download: nothing is downloaded here; put the images in "
                                        "data_dir/<split>/<class>/ and set dataset_download: false")
    _require(c["dataset"].lower() in ("imagenet", "imagefolder"),
             f"dataset {c['dataset']!r}: only ImageFolder layouts (imagenet, imagefolder) are read here")
    _require(c["aug_splits"] == 0, "aug_splits (AugMix splits) is not supported: set it to 0")
    _require(not c["drop_path_rate"], "drop_path_rate: ShuffleNet has no stochastic depth; leave it null")
    _require(c["layer_decay"] is None, "layer_decay is not supported for ShuffleNet; leave it null")
    _require(c["amp_cast_list"] is None, "amp_cast_list is not supported; use amp_level O0/O2/O3")
    _require(all(f >= 0 for f in c["aux_factor"]), f"aux_factor must be numbers >= 0, got {list(c['aux_factor'])}")
    _require(c["amp_level"] != "O1", "amp_level O1 is not supported (MindSpore's O1 fails on these "
                                     "networks): use O0, O2 or O3")
    _require(c["val_amp_level"] != "O1", "val_amp_level O1 is not supported: use O0, O2 or O3")
    # A sunk graph has static shapes: it cannot take the smaller last batch. Refused on every device, so that
    # a recipe tried on a CPU does not fail later on Ascend.
    _require(c["drop_remainder"] or not c["dataset_sink_mode"],
             "drop_remainder: False gives a smaller last batch, which dataset_sink_mode (static shapes on the "
             "device) cannot take: set drop_remainder: True or dataset_sink_mode: False")


def _check(c: Dict[str, Any], origin: Callable[[str], str] = lambda key: "given") -> None:
    """Raise ConfigError for the first value that cannot be used; ``origin(key)`` says where a value came from."""
    from .models.registry import canonical_model_name

    def value_of(key: str) -> str:  # "warmup_epochs (4, from recipe.yaml)"
        return f"{key} ({c[key]}, {origin(key)})"

    _check_supported(c)
    _require(c["model"] is not None, "model is required, e.g. --model shufflenet_v2_x1_0")
    try:
        c["model"] = canonical_model_name(c["model"])
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None

    positive_ints = ("batch_size", "epoch_size", "val_interval", "keep_checkpoint_max", "ckpt_save_interval",
                     "image_resize", "gradient_accumulation_steps",
                     "max_bad_steps", "re_max_attempts", "num_cycles")
    for key in positive_ints:
        _require(c[key] >= 1, f"{key} must be >= 1, got {c[key]}")
    for key in ("log_interval", "aug_repeats", "warmup_epochs", "decay_epochs"):
        _require(c[key] >= 0, f"{key} must be >= 0, got {c[key]}")
    for key in ("num_classes", "num_samples", "num_threads", "num_parallel_workers"):
        _require(c[key] is None or c[key] >= 1, f"{key} must be >= 1, got {c[key]}")
    _require(c["lr"] > 0, f"lr must be > 0, got {c['lr']}")
    _require(c["min_lr"] >= 0, f"min_lr must be >= 0, got {c['min_lr']}")
    if c["min_lr"] > c["lr"]:
        raise _SourcedError(f"{value_of('min_lr')} must not exceed {value_of('lr')}")
    if c["warmup_epochs"] > c["epoch_size"]:
        raise _SourcedError(f"{value_of('warmup_epochs')} must not exceed {value_of('epoch_size')}: lower "
                            f"warmup_epochs or raise epoch_size")
    for key in ("hflip", "vflip", "re_prob", "cutmix_prob", "warmup_factor"):
        _require(0 <= c[key] <= 1, f"{key} must be in [0, 1], got {c[key]}")
    _require(0 <= c["label_smoothing"] < 1, f"label_smoothing must be in [0, 1), got {c['label_smoothing']}")
    _require(c["drop_rate"] is None or 0 <= c["drop_rate"] < 1, f"drop_rate must be in [0, 1), got {c['drop_rate']}")
    for key in ("mixup", "cutmix", "momentum", "weight_decay"):
        _require(c[key] >= 0, f"{key} must be >= 0, got {c[key]}")
    _require(0 < c["decay_rate"] <= 1 or c["scheduler"] not in ("step_decay", "multi_step_decay",
                                                                 "exponential_decay"),
             f"decay_rate must be in (0, 1], got {c['decay_rate']}")
    _require(0 < c["ema_decay"] < 1, f"ema_decay must be in (0, 1), got {c['ema_decay']}")
    _require(c["clip_value"] > 0, f"clip_value must be > 0, got {c['clip_value']}")
    _require(c["loss_scale"] > 0, f"loss_scale must be > 0, got {c['loss_scale']}")
    _require(c["crop_pct"] is not None and 0 < c["crop_pct"] <= 1, f"crop_pct must be in (0, 1], got {c['crop_pct']}")
    for key in ("scale", "ratio", "re_scale", "re_ratio"):
        pair = c[key]
        _require(len(pair) == 2 and 0 < pair[0] <= pair[1],
                 f"{key} must be two increasing positive numbers [low, high], got {list(pair)}")
    _require(c["scale"][1] <= 1, f"scale is a fraction of the image area: at most 1, got {list(c['scale'])}")
    # The pipeline decodes every image to RGB, so a network reading these images has 3 input channels and
    # normalization has one mean and one std per R, G, B channel.
    _require(c["in_channels"] == IMAGE_CHANNELS,
             f"in_channels must be {IMAGE_CHANNELS}: images are decoded to {IMAGE_CHANNELS} channels (RGB) whatever "
             f"their mode on disk, got {c['in_channels']}")
    for key in ("mean", "std"):
        _require(len(c[key]) == IMAGE_CHANNELS,
                 f"{key} needs {IMAGE_CHANNELS} values (R, G, B on the 0-255 scale), got {list(c[key])}")
    _require(all(s > 0 for s in c["std"]), f"std values must be > 0, got {list(c['std'])}")
    jitter = c["color_jitter"]
    values = jitter if isinstance(jitter, tuple) else (jitter,) if jitter is not None else ()
    _require(all(v >= 0 for v in values), f"color_jitter values must be >= 0, got {jitter}")
    if c["resume_opt"]:
        _require(bool(c["ckpt_path"]), "resume_opt: true needs ckpt_path (the checkpoint to resume)")
    _require(not (c["resume"] and c["resume_opt"]), "give resume or ckpt_path + resume_opt, not both")
    _require(not (c["pretrained"] and c["ckpt_path"]), "give pretrained or ckpt_path, not both")


# ---------------------------------------------------------------------------------------------------
# saving


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the effective configuration as YAML (atomically: a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    header = f"# effective configuration{f' (from {cfg.source})' if cfg.source else ''}\n"
    tmp.write_text(header + yaml.safe_dump(cfg.as_dict(), sort_keys=False))
    os.replace(tmp, path)


def describe_options(filter_fn: Callable[[Option], bool] = lambda o: True) -> str:
    """One line per key, for the README and --help."""
    return "\n".join(f"{o.name}: {o.help} (default {o.default!r})" for o in OPTIONS if filter_fn(o))
