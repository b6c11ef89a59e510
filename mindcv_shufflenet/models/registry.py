"""Model registry: each model's builder and facts by name (``register_model``, ``list_models()``, ``model_info``),
with MindCV's names; ``factory.create_model`` builds them."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import typing
from typing import Any, Callable, Dict, List, Optional, Set, Union

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


def call_builder(name: str, **kwargs: Any) -> nn.Cell:
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
