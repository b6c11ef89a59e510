"""Strict weight loading: every parameter of the network comes from the file, or loading fails.

MindSpore's ``load_param_into_net`` only warns about parameters it did not find, which leaves them at
their random initialisation; MindCV's main loads its own released V1 checkpoints that way with 94
parameters untouched. Here anything missing, mis-shaped or unexplained is an error listing the names.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import mindspore as ms
import numpy as np
from mindspore import nn

from ..checkpoints.integrity import CheckpointFileError, check_checkpoint_file
from ..checkpoints.mindcv_v1 import grouped_from_split_convs
from .download import fetch_released_weights
from .metadata import Preprocessing
from .registry import canonical_model_name

logger = logging.getLogger(__name__)

# What a training checkpoint holds besides the network: optimizer slots, EMA copies, loss-scale and
# progress counters. Ignored when loading a network (``ema=True`` takes the EMA copy instead).
AUXILIARY_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "ema.", "stat.", "swa.", "grad_accum.")
AUXILIARY_NAMES = frozenset({
    "global_step", "momentum", "learning_rate", "scale_sense", "loss_scale", "current_iterator_step",
    "last_overflow_iterator_step", "epoch_num", "step_num", "beta1_power", "beta2_power", "weight_decay",
    # written by this project's trainer (engine/train_step.py, engine/checkpoint.py)
    "loss_scale_counter", "ema_updates", "accum_step", "epoch", "best_top1", "best_epoch", "top1", "top5",
    "skipped_updates", "window_finite",
})

_MAX_LISTED = 12

# A checkpoint written by this project (``save_checkpoint``, ``scripts/convert_weights.py``) carries a JSON
# record under this name: the model name, the model options the weights need (``pool_padding``, ...), the
# number of classes and optionally their names. In a ``.ckpt`` it is a string entry (MindSpore and MindCV
# loaders skip it); safetensors cannot hold strings, so there it is the UTF-8 bytes as a uint8 tensor.
META_KEY = "mindcv_shufflenet_meta"
META_FORMAT = 1
CLASSIFIER_PREFIX = "classifier."


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the network: names are missing, mis-shaped or unexpected."""


def read_checkpoint(path: str | os.PathLike) -> Dict[str, np.ndarray]:
    """The tensors of a MindSpore checkpoint (``.ckpt`` or ``.safetensors``) as ``name -> array``."""
    return read_checkpoint_with_meta(path)[0]


def read_checkpoint_with_meta(path: str | os.PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """A checkpoint's tensors (``name -> array``) and the record this project writes beside them
    (``{"model": ..., "options": {...}, "num_classes": ..., "class_names": [...]}``; empty if absent,
    as in MindCV's checkpoints)."""
    path = Path(path)
    # Missing, empty, cut short, changed on disk (CRC), not a checkpoint: said in our words, not MindSpore's.
    check_checkpoint_file(path)
    fmt = "safetensors" if path.suffix == ".safetensors" else "ckpt"
    try:  # the CRC of a file saved with one (as training saves them) was checked above
        params = ms.load_checkpoint(str(path), format=fmt, crc_check=False)
    except Exception as err:  # MindSpore raises ValueError/RuntimeError/protobuf errors for bad files
        raise CheckpointFileError(path, f"its structure is whole but MindSpore cannot parse it "
                                        f"({str(err).splitlines()[0]})") from None
    meta: Dict[str, Any] = {}
    if META_KEY in params:
        raw = params.pop(META_KEY)
        text = raw if isinstance(raw, str) else bytes(raw.asnumpy().astype(np.uint8)).decode("utf-8")
        try:
            meta = json.loads(text)
        except ValueError:
            raise ValueError(f"cannot read checkpoint {path}: its {META_KEY} entry is not JSON") from None
        if not isinstance(meta, dict) or meta.get("format", 0) > META_FORMAT:
            raise ValueError(f"cannot read checkpoint {path}: its {META_KEY} entry is from a newer "
                             f"mindcv_shufflenet (format {meta.get('format') if isinstance(meta, dict) else '?'})")
    # Non-tensor entries (strings appended as metadata) are not weights.
    state = {name: value.asnumpy() for name, value in params.items() if isinstance(value, ms.Tensor)}
    return state, meta


def checkpoint_record(
    net_or_state: Union[nn.Cell, Mapping[str, np.ndarray]],
    model_name: Optional[str] = None,
    options: Optional[Mapping[str, Any]] = None,
    class_names: Optional[Sequence[str]] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, str]:
    """The record that lets ``create_model`` rebuild a network, as ``{META_KEY: json}``, for
    ``ms.save_checkpoint(..., append_dict=...)`` or ``CheckpointConfig(append_info=[...])``.

    Args:
        net_or_state: the network, or its parameters by name.
        model_name: the registered name (``create_model`` then refuses the file for another model).
        options: model options the weights need; default: the network's ``options`` (``pool_padding``,
            ...). ``create_model(checkpoint_path=...)`` applies them, so users need not repeat them.
        class_names: the classes of the classifier's outputs, in order (``infer.py`` prints them).
        extra: more JSON-serialisable facts to record (e.g. ``{"source": "torchvision"}``).
    """
    if isinstance(net_or_state, nn.Cell):
        shapes = {name: tuple(p.shape) for name, p in net_or_state.parameters_and_names()}
        if options is None:
            options = getattr(net_or_state, "options", None)
    else:
        shapes = {name: np.shape(value) for name, value in net_or_state.items()}
    weight = shapes.get(CLASSIFIER_PREFIX + "weight")
    num_classes = int(weight[0]) if weight is not None and len(weight) == 2 else None
    meta: Dict[str, Any] = {"format": META_FORMAT}
    if model_name is not None:
        meta["model"] = model_name
    if isinstance(net_or_state, nn.Cell) and getattr(net_or_state, "features_only", False):
        meta["features_only"] = True  # no classifier: infer.py and validate.py refuse the file
        meta["out_indices"] = list(net_or_state.out_indices)
    meta["options"] = _jsonable(dict(options or {}))
    if num_classes is not None:
        meta["num_classes"] = num_classes
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a classifier of {num_classes} classes")
        meta["class_names"] = class_names
    meta.update(_jsonable(dict(extra or {})))
    return {META_KEY: json.dumps(meta, sort_keys=True)}


def save_checkpoint(
    net_or_state: Union[nn.Cell, Mapping[str, np.ndarray]],
    path: str | os.PathLike,
    model_name: Optional[str] = None,
    options: Optional[Mapping[str, Any]] = None,
    class_names: Optional[Sequence[str]] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Save a network (or a ``name -> array`` state) as ``.ckpt`` or ``.safetensors`` with its
    :func:`checkpoint_record` (see there for the arguments)."""
    path = Path(path)
    record = checkpoint_record(net_or_state, model_name, options, class_names, extra)
    if isinstance(net_or_state, nn.Cell):
        state = {name: p.asnumpy() for name, p in net_or_state.parameters_and_names()}
    else:
        state = {name: np.asarray(value) for name, value in net_or_state.items()}
    entries = [{"name": name, "data": ms.Tensor(np.ascontiguousarray(value))} for name, value in state.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":  # no strings there: the record's UTF-8 bytes as a uint8 tensor
        data = np.frombuffer(record[META_KEY].encode("utf-8"), np.uint8).copy()
        entries.append({"name": META_KEY, "data": ms.Tensor(data)})
        ms.save_checkpoint(entries, str(path), format="safetensors")
    else:
        ms.save_checkpoint(entries, str(path), append_dict=record)
    return path


def recorded_preprocessing(path: str | os.PathLike) -> Optional[Preprocessing]:
    """The evaluation preprocessing a checkpoint records (training writes it), or None if it records none."""
    _, meta = read_checkpoint_with_meta(path)
    recorded = meta.get("preprocessing")
    if not isinstance(recorded, dict):
        return None
    fields = {k: v for k, v in recorded.items() if k in Preprocessing.__dataclass_fields__}
    for key in ("mean", "std"):
        if key in fields:
            fields[key] = tuple(float(v) for v in fields[key])
    try:
        return Preprocessing(**fields)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its recorded preprocessing is not valid ({err})") from None


def recorded_model(path: str | os.PathLike) -> Optional[str]:
    """The model name a checkpoint records (train.py writes it), or None (MindCV's checkpoints)."""
    return read_checkpoint_with_meta(path)[1].get("model") or None


def recorded_features_only(path: str | os.PathLike) -> bool:
    """Whether a checkpoint records that it holds a ``features_only`` network's weights (no classifier)."""
    return bool(read_checkpoint_with_meta(path)[1].get("features_only"))


def checkpoint_classes(path: str | os.PathLike, ema: bool = False) -> Tuple[Optional[int], Optional[List[str]]]:
    """The number of classes of a checkpoint's classifier (None if it has none) and the class names it
    records (None if it records none)."""
    state, meta = read_checkpoint_with_meta(path)
    if ema:
        state = {name[len("ema."):]: value for name, value in state.items() if name.startswith("ema.")}
    names = meta.get("class_names")
    return _classifier_classes(state), (list(names) if names else None)


def merge_options(recorded: Mapping[str, Any], given: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The model options a checkpoint records, with the caller's; a caller's value that contradicts the
    recorded one is a ValueError naming both (weights are only right with the options they were made for)."""
    merged = dict(given)
    for key, value in recorded.items():
        if key in given and _jsonable(given[key]) != _jsonable(value):
            raise ValueError(f"{source} was saved with {key}={value!r}, but {key}={given[key]!r} was passed: "
                             f"leave {key} out to use the checkpoint's setting")
        merged[key] = value
    return merged


def load_checkpoint(net: nn.Cell, path: str | os.PathLike, ema: bool = False,
                    exclude: Iterable[str] = (), finetune: bool = False) -> None:
    """Load a checkpoint file into ``net`` strictly; see :func:`load_state_dict`.

    If the file records model options (``pool_padding``, ...) that ``net`` was not built with, that is a
    :class:`CheckpointMismatchError`: the weights would load but compute something else. Build the
    network with ``create_model(name, checkpoint_path=path)`` to get the recorded options applied.
    """
    state, meta = read_checkpoint_with_meta(path)
    own = getattr(net, "options", {})
    conflicts = [f"{key}={value!r} (network: {own[key]!r})" for key, value in meta.get("options", {}).items()
                 if key in own and _jsonable(own[key]) != _jsonable(value)]
    if conflicts:
        raise CheckpointMismatchError(f"{path} was saved from a network with {', '.join(conflicts)}: build it with "
                                      f"create_model(..., checkpoint_path=...) to apply the checkpoint's options")
    _load_file_state(net, state, path, ema=ema, exclude=exclude, finetune=finetune)


def build_from_checkpoint(build: Callable[..., nn.Cell], model_name: str, path: str | os.PathLike,
                          options: Mapping[str, Any], ema: bool = False, finetune: bool = False) -> nn.Cell:
    """``build(**options)`` with the model options the checkpoint at ``path`` records added, then the file's
    weights loaded strictly (see :func:`load_state_dict`): what ``create_model(checkpoint_path=...)`` does.

    A file recorded for another model than ``model_name``, or recording an option that contradicts one in
    ``options``, is a ValueError naming both; so is a ``features_only`` network's file for a classifier. Such a
    file's recorded ``out_indices`` are the default of a ``features_only`` network built from it."""
    state, meta = read_checkpoint_with_meta(path)
    recorded = meta.get("model")
    if recorded and canonical_model_name(recorded) != model_name:
        raise ValueError(f"{path} holds {recorded} weights, not {model_name}")
    if meta.get("features_only"):
        if not options.get("features_only"):
            raise ValueError(features_only_refusal(path, "a classifier"))
        if options.get("out_indices") is None and meta.get("out_indices"):  # the maps the file was saved for
            options = {**options, "out_indices": tuple(meta["out_indices"])}
    model = build(**merge_options(meta.get("options", {}), options, str(path)))
    _load_file_state(model, state, path, ema=ema, finetune=finetune)
    return model


def features_only_refusal(path: str | os.PathLike, wanted: str) -> str:
    """The one-line refusal of a feature extractor's checkpoint where ``wanted`` (a classifier) is needed."""
    return (f"{path} holds a features_only network's weights (no classifier head), so it cannot make {wanted}: "
            f"load it with features_only=True, or give a classifier's checkpoint")


def _load_file_state(net: nn.Cell, state: Mapping[str, np.ndarray], path: str | os.PathLike, **kwargs: Any) -> None:
    # load_state_dict's errors do not know the file: name it first.
    try:
        load_state_dict(net, state, source=str(path), **kwargs)
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(f"{path}: {err}") from None


def load_state_dict(net: nn.Cell, state: Mapping[str, np.ndarray], ema: bool = False,
                    exclude: Iterable[str] = (), finetune: bool = False, source: str = "checkpoint") -> None:
    """Copy ``state`` into ``net``'s parameters, all or nothing.

    Every network parameter must be present with the right shape, except those whose names start with
    a prefix in ``exclude`` (which keep their current values). Optimizer slots, EMA copies and counters
    in ``state`` are ignored, and so are, for a ``features_only`` network, the entries of the parts it
    was built without (``net.omitted_prefixes``: the head); any other name the network does not have is an
    error, since it means the file belongs to a different architecture. MindCV's split-conv V1 layout is
    converted first.

    With ``finetune=True``, a classifier for another number of classes is not an error: the network's
    classifier keeps its initialisation (logged) and everything else loads strictly.

    Raises:
        CheckpointMismatchError: listing the missing, mis-shaped and unexpected names. Nothing is
            copied into the network in that case.
    """
    exclude = tuple(exclude)
    state = grouped_from_split_convs(state)
    state.pop(META_KEY, None)
    if ema:
        state = {name[len("ema."):]: value for name, value in state.items() if name.startswith("ema.")}
        if not state:
            raise CheckpointMismatchError("ema=True, but the checkpoint holds no EMA weights (ema.*)")
    omitted = tuple(getattr(net, "omitted_prefixes", ()))
    if omitted:  # a features_only network: the classifier's head (and units past its last map) are not built
        state = {name: value for name, value in state.items() if not name.startswith(omitted)}

    own_classes, file_classes = getattr(net, "num_classes", None), _classifier_classes(state)
    if finetune and file_classes is not None and own_classes is not None and file_classes != own_classes:
        logger.info("%s: its classifier has %d classes, the network %d: the classifier is re-initialised for "
                    "fine-tuning, everything else is loaded", source, file_classes, own_classes)
        exclude += (CLASSIFIER_PREFIX,)
        state = {name: value for name, value in state.items() if not name.startswith(CLASSIFIER_PREFIX)}

    params = {name: p for name, p in net.parameters_and_names() if not name.startswith(exclude)}
    missing = [name for name in params if name not in state]
    mismatched = [f"{name}: checkpoint {tuple(state[name].shape)}, network {tuple(p.shape)}"
                  for name, p in params.items() if name in state and tuple(state[name].shape) != tuple(p.shape)]
    own_names = {name for name, _ in net.parameters_and_names()}
    unexpected = [name for name in state if name not in own_names and not _is_auxiliary(name)]
    problems = []
    if missing:
        problems.append(_listing(f"{len(missing)} of the network's {len(params)} parameters are missing", missing))
    if mismatched:
        problems.append(_listing(f"{len(mismatched)} parameters have the wrong shape", mismatched))
    if unexpected:
        problems.append(_listing(f"{len(unexpected)} entries are not parameters of this network", unexpected))
    if problems:
        hint = "wrong model name or width?"
        if mismatched and all(m.startswith(CLASSIFIER_PREFIX) for m in mismatched) and not missing and not unexpected:
            hint = (f"the checkpoint's classifier has {file_classes} classes, the network {own_classes}: set "
                    f"num_classes={file_classes}, or finetune=True to re-initialise the classifier")
        raise CheckpointMismatchError(
            f"checkpoint does not fit {type(net).__name__} ({hint}): " + "; ".join(problems))

    for name, p in params.items():
        p.set_data(ms.Tensor(np.asarray(state[name], dtype=ms.dtype_to_nptype(p.dtype))))


def load_pretrained(net: nn.Cell, model_name: str) -> None:
    """Load the released ImageNet weights of ``model_name`` (its ``model_info(...).weights``) from
    :func:`pretrained_dir`, after checking that the file's SHA-256 starts with the released hash prefix.

    Nothing is downloaded unless asked (training clusters are often offline): a missing file is an error
    that names the URL and the place to put it, unless ``MINDCV_SHUFFLENET_DOWNLOAD`` asks for a download
    (``models.download``). With ``num_classes != 1000`` the classifier keeps its initialisation
    (fine-tuning), and that is logged; a ``features_only`` network takes everything but the head.
    """
    path = fetch_released_weights(model_name)
    exclude = ()
    if not getattr(net, "features_only", False) and getattr(net, "num_classes", 1000) != 1000:
        exclude = ("classifier.",)
        logger.info("%s: loading pretrained weights without the classifier (num_classes=%d, the checkpoint "
                    "has 1000)", model_name, net.num_classes)
    load_checkpoint(net, path, exclude=exclude)


def _classifier_classes(state: Mapping[str, np.ndarray]) -> Optional[int]:
    weight = state.get(CLASSIFIER_PREFIX + "weight")
    return None if weight is None or len(np.shape(weight)) != 2 else int(np.shape(weight)[0])


def _jsonable(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists), so recorded and given options compare."""
    return json.loads(json.dumps(value))


def _is_auxiliary(name: str) -> bool:
    return name in AUXILIARY_NAMES or name.startswith(AUXILIARY_PREFIXES)


def _listing(headline: str, names: List[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return f"{headline}: {shown}{more}"
