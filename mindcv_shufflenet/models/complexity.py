"""Parameter and multiply-add counts, computed from the network itself.

Multiply-adds follow the papers' "FLOPs": those of the convolutions and the classifier for one image;
BatchNorm, activations, pooling and additions are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

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
