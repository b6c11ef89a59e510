"""Parameter and multiply-add counts: from a built network (``count_params``, ``count_macs``), or
without building it, from the description its builder uses (``Tally``, ``model_counts``).

Multiply-adds follow the papers' "FLOPs": those of the convolutions and the dense layers for one image;
BatchNorm, activations, pooling, additions and squeeze-and-excitation gating products are not counted.
The large models (ShuffleNetV2.Large has 140 M parameters, ExLarge 271 M) are counted analytically:
building them takes seconds and gigabytes, a forward pass at 224x224 tens of GFLOPs. Tests check the
analytic counts against ``count_params`` / ``count_macs`` of built networks at reduced widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np
from mindspore import Tensor, nn

from .. import runtime


@dataclass(frozen=True)
class ParamCount:
    trainable: int  # what an optimizer updates (MindCV's checkpoints: ``trainable`` rows)
    buffers: int  # BatchNorm moving mean and variance

    @property
    def total(self) -> int:
        """Trainable plus buffers: what MindCV's model table reports as "Params(M)"."""
        return self.trainable + self.buffers


def count_params(net: nn.Cell) -> ParamCount:
    trainable = buffers = 0
    for _, p in net.parameters_and_names():
        if p.requires_grad:
            trainable += int(np.prod(p.shape))
        else:
            buffers += int(np.prod(p.shape))
    return ParamCount(trainable, buffers)


def count_macs(net: nn.Cell, image_size: int = 224, in_channels: int = 3) -> int:
    """Multiply-adds of one forward pass on a ``image_size`` x ``image_size`` image.

    Runs the network once in PyNative mode with forward hooks on its Conv2d and Dense cells, so the
    count follows the shapes the network really produces (padding, strides, groups).
    """
    macs = []

    def conv_hook(cell: nn.Conv2d, inputs, output) -> None:
        kh, kw = cell.kernel_size
        macs.append(int(np.prod(output.shape[1:])) * (cell.in_channels // cell.group) * kh * kw)

    def dense_hook(cell: nn.Dense, inputs, output) -> None:
        macs.append(cell.in_channels * cell.out_channels)

    handles = []
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            handles.append(cell.register_forward_hook(conv_hook))
        elif isinstance(cell, nn.Dense):
            handles.append(cell.register_forward_hook(dense_hook))
    previous_mode, was_training = runtime.current_mode(), net.training
    runtime.set_mode("pynative")  # hooks only run in PyNative mode
    net.set_train(False)
    try:
        net(Tensor(np.zeros((1, in_channels, image_size, image_size), np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        net.set_train(was_training)
        runtime.set_mode(previous_mode)
    return sum(macs)


@dataclass(frozen=True)
class Counts:
    """What the model table shows for one model."""

    params: ParamCount  # the network as trained and saved, auxiliary heads included
    macs: int  # one inference pass (auxiliary heads do not run)
    aux_params: ParamCount = ParamCount(0, 0)  # the part of ``params`` in auxiliary heads

    @property
    def inference_params(self) -> ParamCount:
        """Parameters without the auxiliary heads (those an exported network keeps)."""
        return ParamCount(self.params.trainable - self.aux_params.trainable,
                          self.params.buffers - self.aux_params.buffers)


class Tally:
    """Parameters and multiply-adds added up layer by layer, for counting a network from its description.

    Each method adds one layer and returns its output's spatial size; sizes are (height, width).
    """

    def __init__(self) -> None:
        self.trainable = self.buffers = self.macs = 0

    def conv(self, cin: int, cout: int, kernel: int, size: Tuple[int, int], stride: int = 1, groups: int = 1,
             bias: bool = False) -> Tuple[int, int]:
        """A conv padded by kernel // 2 (as every conv of the family is)."""
        out = tuple((s + 2 * (kernel // 2) - kernel) // stride + 1 for s in size)
        weights = cout * (cin // groups) * kernel * kernel
        self.trainable += weights + (cout if bias else 0)
        self.macs += weights * out[0] * out[1]
        return out

    def bn(self, channels: int) -> None:
        self.trainable += 2 * channels  # gamma, beta
        self.buffers += 2 * channels  # moving mean and variance

    def dense(self, cin: int, cout: int, bias: bool = False) -> None:
        self.trainable += cin * cout + (cout if bias else 0)
        self.macs += cin * cout

    @staticmethod
    def pool(size: Tuple[int, int]) -> Tuple[int, int]:
        """A 3x3 stride-2 pool ("same" or padded by one: the same size)."""
        return tuple((s - 1) // 2 + 1 for s in size)

    def se(self, channels: int, reduced: int, norm: bool, bias: bool) -> None:
        """A ``layers.SqueezeExcite`` (its 1x1 convs act on a 1x1 map)."""
        self.conv(channels, reduced, 1, (1, 1), bias=bias)
        if norm:
            self.bn(reduced)
        self.conv(reduced, channels, 1, (1, 1), bias=bias)

    @property
    def params(self) -> ParamCount:
        return ParamCount(self.trainable, self.buffers)


_COUNTERS: Dict[str, Callable[..., Counts]] = {}


def register_counter(model_name: str, counter: Callable[..., Counts]) -> None:
    """Count ``model_name`` with ``counter(image_size=..., num_classes=...)`` instead of building it."""
    _COUNTERS[model_name] = counter


def model_counts(model_name: str, image_size: int = 224, num_classes: int = 1000) -> Counts:
    """A registered model's counts: analytic where its family provides a counter, else from the network
    built and run once (``count_params``, ``count_macs``)."""
    from .factory import create_model
    from .registry import canonical_model_name

    name = canonical_model_name(model_name)
    if name in _COUNTERS:
        return _COUNTERS[name](image_size=image_size, num_classes=num_classes)
    net = create_model(name, num_classes=num_classes)
    return Counts(count_params(net), count_macs(net, image_size))
