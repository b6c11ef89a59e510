"""Model registry: ``create_model(name, ...)``, ``list_models()`` and each model's facts (``model_info``), with
MindCV's names and signature."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

from mindspore import nn

from .metadata import ModelInfo

Builder = Callable[..., nn.Cell]
_MODELS: Dict[str, Builder] = {}
_INFO: Dict[str, ModelInfo] = {}

# MindCV releases before 0.2 named V1 models like "shufflenet_v1_g3_x1_0"; their YAML files still do.
_LEGACY_V1_NAME = re.compile(r"^shufflenet_v1_g(\d)_x(\d)_(\d)$")


def register_model(info: Union[ModelInfo, Builder, None] = None) -> Union[Builder, Callable[[Builder], Builder]]:
    """Register a builder ``fn(pretrained=False, num_classes=1000, in_channels=3, **kwargs)`` by its name, with
    its facts: ``@register_model(ModelInfo(...))`` above the builder (``@register_model`` alone: no facts
    beyond the defaults)."""
    if callable(info):
        return register_model()(info)

    def register(fn: Builder) -> Builder:
        name = fn.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        _INFO[name] = info or ModelInfo()
        return fn

    return register


def list_models(pattern: str = "*", pretrained: bool = False) -> List[str]:
    """Registered model names matching a shell-style pattern, e.g. ``list_models("shufflenet_v2*")``; with
    ``pretrained=True`` only those with released weights."""
    return sorted(name for name in _MODELS
                  if fnmatch.fnmatch(name, pattern) and (not pretrained or _INFO[name].weights is not None))


def model_info(model_name: str) -> ModelInfo:
    """The facts registered with a model (MindCV's legacy V1 names are accepted): released weights,
    preprocessing, pool padding, published figures."""
    return _INFO[canonical_model_name(model_name)]


def canonical_model_name(name: str) -> str:
    """The registered name for ``name``, accepting MindCV's legacy V1 names; ValueError if unknown."""
    legacy = _LEGACY_V1_NAME.match(name)
    if legacy:
        name = "shufflenet_v1_g{}_{}{}".format(*legacy.groups())
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see list_models()"
        raise ValueError(f"unknown model {name!r}: {hint}")
    return name


def create_model(
    model_name: str,
    num_classes: int = 1000,
    in_channels: int = 3,
    pretrained: bool = False,
    checkpoint_path: Optional[str] = None,
    ema: bool = False,
    finetune: bool = False,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    pretrained_url: Optional[str] = None,
    **kwargs,
) -> nn.Cell:
    """Build a registered model, optionally with weights.

    Args:
        model_name: a name from ``list_models()`` (MindCV's legacy V1 names are accepted too).
        num_classes, in_channels: classifier outputs and image channels.
        pretrained: load MindCV's released ImageNet weights from the local weights folder
            (see ``weights.pretrained_dir``), checked against their SHA-256 first.
        pretrained_url: with ``pretrained``, download the released file from this URL if it is not in the
            weights folder yet (verified, then kept there); see ``download`` for the environment setting
            that does the same for every model. Default: offline.
        checkpoint_path: load this checkpoint strictly (every network parameter must be in it with the
            right shape); MindCV checkpoints of either V1 layout are accepted. Empty means none. Model
            options the file records (converted torchvision/official weights record ``pool_padding``,
            ``proj_channels``, ...) are applied; passing a different value for one is an error.
        ema: take the weights from the checkpoint's EMA copy (``ema.*``) instead of the raw ones.
        finetune: the checkpoint is a starting point for another class count: if its classifier has
            another number of classes than ``num_classes``, the classifier is re-initialised (a message
            says so) and everything else loads strictly. Without it, that is an error.
        features_only: build the network as a feature extractor (``models.backbone``): without the
            classifier head, returning a tuple of feature maps described by ``net.feature_info``. Weights
            (``pretrained``, ``checkpoint_path``) load into it without the head, strictly otherwise.
        out_indices: with ``features_only``, which maps, in that order: 0 stride 4, 1-3 the stages at
            strides 8/16/32, 4 the final conv where the family has one (default: all it has).
        **kwargs: passed to the model class, e.g. ``pool_padding="symmetric"``. A value of None means
            "not given": the checkpoint's recorded option, or the model's default.
    """
    name = canonical_model_name(model_name)
    options = {key: value for key, value in kwargs.items() if value is not None}
    if out_indices is not None and not features_only:
        raise ValueError("out_indices chooses the maps of a feature extractor: add features_only=True")
    if features_only:
        options.update(features_only=True, out_indices=out_indices)
    if pretrained_url and not pretrained:
        raise ValueError("pretrained_url is where the released weights are downloaded from: add pretrained=True")
    if pretrained and checkpoint_path:
        raise ValueError("pass either pretrained=True or checkpoint_path, not both")
    if ema and not checkpoint_path:
        raise ValueError("ema=True selects the EMA weights of a checkpoint: give checkpoint_path too")
    if finetune and not checkpoint_path:
        raise ValueError("finetune=True re-initialises a checkpoint's classifier: give checkpoint_path too "
                         "(pretrained=True does it by itself)")
    if pretrained_url:  # fetched (and verified) before the builder loads it
        from .download import fetch_released_weights

        fetch_released_weights(name, pretrained_url)
    build = functools.partial(_build, name, pretrained=pretrained, num_classes=num_classes, in_channels=in_channels)
    if checkpoint_path:
        from .weights import build_from_checkpoint

        return build_from_checkpoint(build, name, checkpoint_path, options, ema=ema, finetune=finetune)
    return build(**options)


def _build(name: str, **kwargs: Any) -> nn.Cell:
    """Call the builder of ``name``; a keyword it does not take is the caller's mistake (a ValueError naming the
    valid ones), while a TypeError raised inside the builder is a bug there and is left as it is."""
    accepted = accepted_options(_MODELS[name])
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{name}: unknown model option {unknown[0]!r}{hint}; valid: {', '.join(sorted(accepted))}")
    return _MODELS[name](**kwargs)


def accepted_options(fn: Callable[..., Any]) -> Optional[Set[str]]:
    """The keywords ``fn`` takes. A builder that passes ``**kwargs`` on takes those of the class its return
    annotation names too (``-> ShuffleNetV2``); None when that cannot be known (any keyword may be right)."""
    parameters = inspect.signature(fn).parameters.values()
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        return named
    model_class = typing.get_type_hints(fn).get("return") if not inspect.isclass(fn) else None
    if not inspect.isclass(model_class):
        return None
    passed_on = accepted_options(model_class)
    return None if passed_on is None else named | passed_on
