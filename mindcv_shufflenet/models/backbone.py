"""What every ShuffleNet family shares as a model: feature maps by stage (``features_only``) and the
classifier interface timm's models have (``num_features``, ``get_classifier``, ``reset_classifier``,
``forward_features``, ``forward_head(x, pre_logits=True)``).

Feature indices mean the same in every family, so that a detector's neck can take any of them:

- 0: the deepest map at stride 4: the stem after its max pool (V1, V2), or the first stage where that
  stage keeps stride 4 (ShuffleNet v2-50, V2.Large, V2.ExLarge) or makes it (V2+, which has no max pool);
- 1, 2, 3: the last unit of the stride-8, stride-16 and stride-32 stages (the maps NanoDet and
  PaddleDetection take from ShuffleNetV2: ``out_indices=(1, 2, 3)``);
- 4: the final convolution before the global pool (V2's conv5, v2-50's conv6, V2+'s and V2.Large's
  conv_last), also at stride 32; V1 and V2.ExLarge have none.

A ``features_only`` network is the same class as the classifier, built without the classifier head and
without the units after the deepest chosen map, so parameter names are the classifier's and its
checkpoints load (strictly, the entries of the parts left out set aside: ``omitted_prefixes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from mindspore import Tensor, nn

from .fusion import forget_compiled_graphs
from .layers import init_like_mindcv

__all__ = ["FeatureInfo", "StageInfo", "ShuffleNetBase", "STAGE_REDUCTIONS", "FINAL_CONV_INDEX", "check_out_indices"]

# Feature index i < 4 is the deepest map at reduction STAGE_REDUCTIONS[i]; index 4 the final conv.
STAGE_REDUCTIONS = (4, 8, 16, 32)
FINAL_CONV_INDEX = len(STAGE_REDUCTIONS)

# (module name, channels, reduction) of one map a network computes, in the order it computes them.
Point = Tuple[str, int, int]


@dataclass(frozen=True)
class StageInfo:
    """One feature map a network can output."""

    index: int  # the feature index (see the module docstring)
    num_chs: int  # channels
    reduction: int  # input size / map size
    module: str  # the cell that computes it (a name from ``net.cells_and_names()``)

    def as_dict(self) -> Dict[str, Any]:
        """timm's form: ``{"num_chs", "reduction", "module", "index"}``."""
        return {"num_chs": self.num_chs, "reduction": self.reduction, "module": self.module, "index": self.index}


class FeatureInfo:
    """The feature maps a network outputs, in output order, as timm's ``FeatureInfo`` describes them.

    ``channels()``, ``reduction()`` and ``module_name()`` list them for the chosen ``out_indices``; given a
    feature index they describe that map. Iterating (and ``info[i]``, the i-th output) gives one dict per
    output (``num_chs``, ``reduction``, ``module``, ``index``); ``stages`` holds every map the network has.
    """

    def __init__(self, stages: Sequence[StageInfo], out_indices: Optional[Sequence[int]] = None,
                 model: str = "this network") -> None:
        self.stages = tuple(stages)
        self.model = model
        available = self.available
        self.out_indices = available if out_indices is None else check_out_indices(out_indices, available, model)

    @property
    def available(self) -> Tuple[int, ...]:
        return tuple(stage.index for stage in self.stages)

    def select(self, out_indices: Sequence[int]) -> FeatureInfo:
        """The same network's maps for other ``out_indices``."""
        return FeatureInfo(self.stages, out_indices, self.model)

    def stage(self, index: int) -> StageInfo:
        for stage in self.stages:
            if stage.index == index:
                return stage
        raise ValueError(f"{self.model} has no feature index {index} (it has {_listed(self.available)})")

    def _chosen(self, index: Optional[int]) -> List[StageInfo]:
        return [self.stage(i) for i in self.out_indices] if index is None else [self.stage(index)]

    def channels(self, index: Optional[int] = None) -> Union[List[int], int]:
        values = [s.num_chs for s in self._chosen(index)]
        return values if index is None else values[0]

    def reduction(self, index: Optional[int] = None) -> Union[List[int], int]:
        values = [s.reduction for s in self._chosen(index)]
        return values if index is None else values[0]

    def module_name(self, index: Optional[int] = None) -> Union[List[str], str]:
        values = [s.module for s in self._chosen(index)]
        return values if index is None else values[0]

    def get_dicts(self) -> List[Dict[str, Any]]:
        return [s.as_dict() for s in self._chosen(None)]

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.get_dicts())

    def __len__(self) -> int:
        return len(self.out_indices)

    def __getitem__(self, position: int) -> Dict[str, Any]:
        return self.get_dicts()[position]

    def __repr__(self) -> str:
        return f"FeatureInfo({self.get_dicts()})"


def _listed(indices: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indices)


def check_out_indices(out_indices: Any, available: Sequence[int], model: str = "this network") -> Tuple[int, ...]:
    """``out_indices`` as a tuple, or a ValueError naming the problem and the indices ``model`` has."""
    has = f"{model} has feature indices {_listed(available)}"
    if isinstance(out_indices, (int, str)) or not isinstance(out_indices, Sequence):
        raise ValueError(f"out_indices must be a sequence of feature indices such as (1, 2, 3), got {out_indices!r}")
    indices = tuple(out_indices)
    if not indices or any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
        raise ValueError(f"out_indices must list at least one feature index (integers), got {out_indices!r}: {has}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"out_indices lists an index twice: {indices}")
    unknown = [i for i in indices if i not in available]
    if unknown:
        why = " (no final conv in this family)" if unknown[0] == FINAL_CONV_INDEX else ""
        raise ValueError(f"no feature index {unknown[0]}{why}: {has} (0-3: strides 4, 8, 16, 32; 4: the final conv)")
    return indices


def plan_stages(stem: Optional[Point], units: Sequence[Point], final: Optional[Point]) -> List[StageInfo]:
    """The feature maps of a network whose maps, in order, are ``stem`` (None: not a candidate), one per
    unit (``units``) and ``final`` (the final conv, None without one): for each stage reduction the last map
    at it, then the final conv."""
    candidates = ([stem] if stem else []) + list(units)
    stages = []
    for index, reduction in enumerate(STAGE_REDUCTIONS):
        at = [point for point in candidates if point[2] == reduction]
        if at:
            module, channels, _ = at[-1]
            stages.append(StageInfo(index, channels, reduction, module))
    if final is not None:
        stages.append(StageInfo(FINAL_CONV_INDEX, final[1], final[2], final[0]))
    return stages


class ShuffleNetBase(nn.Cell):
    """The model interface shared by the families (see the module docstring). A subclass builds its stem,
    its units (one cell per entry of ``self.features``) and head, calls :meth:`_plan_features` to learn how
    many units and whether the final conv a ``features_only`` network needs, and implements
    ``forward_stages`` (the maps by feature index, selected with :meth:`_select`), ``forward_features`` and
    ``forward_head``.
    """

    # Set by the subclass; "classifier" (a cell) cannot have a class-level default, since a class attribute
    # would hide MindSpore's sub-cell lookup.
    features_only: bool = False
    num_classes: int = 0
    num_features: int = 0
    _classifier_bias: bool = False

    def _plan_features(self, stem: Optional[Point], units: Sequence[Point], final: Optional[Point],
                       features_only: bool, out_indices: Optional[Sequence[int]]) -> Tuple[int, bool]:
        """Record ``feature_info`` and what ``forward_stages`` emits; returns (units to build, build the final
        conv). A classifier keeps every unit, its final conv, and all feature indices."""
        name = type(self).__name__
        if out_indices is not None and not features_only:
            raise ValueError("out_indices chooses the maps of a feature extractor: add features_only=True")
        stages = plan_stages(stem, units, final)
        self.feature_info = FeatureInfo(stages, out_indices if features_only else None, name)
        self.features_only = bool(features_only)
        self.out_indices = self.feature_info.out_indices
        deepest = max(self.out_indices) if features_only else FINAL_CONV_INDEX
        build_final = final is not None and deepest == FINAL_CONV_INDEX
        if not features_only or build_final:
            n_units = len(units)
        else:  # up to the unit that computes the deepest chosen map (none: it is the stem's)
            unit_names = [point[0] for point in units]
            module = self.feature_info.stage(deepest).module
            n_units = unit_names.index(module) + 1 if module in unit_names else 0
        emitted = {stage.module for stage in stages if stage.index < FINAL_CONV_INDEX}
        self._emit_stem = stem is not None and stem[0] in emitted
        self._emit_units = tuple(point[0] in emitted for point in units[:n_units])
        # where each chosen index sits among the maps forward_stages computes (every emitted one, in order)
        computed = [stage.index for stage in stages if stage.index <= deepest]
        self._positions = tuple(computed.index(i) for i in self.out_indices)
        self.omitted_prefixes: Tuple[str, ...] = tuple(point[0] + "." for point in units[n_units:])
        if final is not None and not build_final:
            self.omitted_prefixes += (final[0] + ".",)
        return n_units, build_final

    def _select(self, maps: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """The chosen maps, in the order of ``out_indices``, from all maps up to the deepest chosen."""
        chosen = ()
        for position in self._positions:
            chosen = chosen + (maps[position],)
        return chosen

    def _omit_head(self, *names: str) -> None:
        """For a ``features_only`` network: the head cells ``names`` are not built; a checkpoint's entries
        for them are set aside when loading."""
        self.omitted_prefixes += tuple(name + "." for name in names)

    def get_classifier(self) -> Optional[nn.Dense]:
        """The final fully connected layer (None for a ``features_only`` network or after
        ``reset_classifier(0)``)."""
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` outputs, initialised as the network's own (Normal(0, 0.01),
        bias zero), e.g. to fine-tune on another data set; 0 removes it (the network then outputs its
        pooled features). Build the optimizer and train step after this call."""
        if self.features_only:
            raise ValueError("a features_only network has no classifier to reset: build it without "
                             "features_only, or put your own head on its feature maps")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}")
        self.classifier = self._new_dense(self.num_features, num_classes, self._classifier_bias)
        self._reset_other_heads(num_classes)
        self.num_classes = num_classes
        forget_compiled_graphs(self)  # the compiled graph holds the old classifier's shape

    def _reset_other_heads(self, num_classes: int) -> None:
        """Families with auxiliary classifiers give them ``num_classes`` outputs too."""

    @staticmethod
    def _new_dense(in_features: int, num_classes: int, bias: bool) -> Optional[nn.Dense]:
        if num_classes == 0:
            return None
        dense = nn.Dense(in_features, num_classes, has_bias=bias)
        init_like_mindcv(dense)
        return dense

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        raise NotImplementedError
