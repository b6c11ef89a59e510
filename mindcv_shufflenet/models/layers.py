"""Building blocks shared by the ShuffleNet family: pools, depthwise convs, splits, activations, SE, init."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mindspore import Tensor, nn, ops
from mindspore import dtype as mstype
from mindspore.common import initializer as init

from ..constants import POOL_PADDINGS, choose
from ..kernels import cpu_ops


def downsample_pool(kind: str, pool_padding: str) -> nn.Cell:
    """A 3x3 stride-2 max or average pool, padded the way the weights being used expect.

    "same" is MindCV 0.3.0's ``pad_mode="same"``: for even inputs it pads one row/column at the bottom
    and right only, and the average leaves the padding out of the divisor. "symmetric" pads one on
    every side like torchvision, the official (Megvii) code and MindCV's current V1, and the average
    counts the padding (PyTorch's ``count_include_pad=True``).
    """
    pool_padding = choose("pool_padding", pool_padding, POOL_PADDINGS)
    if kind == "max":
        if pool_padding == "same":
            pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        else:
            pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
    elif kind == "avg":
        if pool_padding == "same":
            pool = nn.AvgPool2d(kernel_size=3, stride=2, pad_mode="same")
        else:
            pool = nn.AvgPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1, count_include_pad=True)
    else:
        raise ValueError(f"unknown pool kind {kind!r}: choose 'max' or 'avg'")
    if pool_padding == "symmetric":
        pool.symmetric_padding = 1  # export.py rewrites it as an explicit pad (ONNX has no such pool op)
    return Pool3x3(kind, pool_padding, native=pool) if cpu_ops.enabled() else pool


class Pool3x3(nn.Cell):
    """A 3x3 stride-2 max or average pool computed by the CPU fast kernels (``kernels.cpu_ops``);
    ``native`` is MindSpore's pool with the same padding, used for other dtypes (the kernels are
    float32) and what ``cpu_ops.use_native_kernels`` puts back."""

    def __init__(self, kind: str, pool_padding: str, native: nn.Cell) -> None:
        super().__init__()
        self.cpu_op = cpu_ops.pool_3x3_s2(kind, pool_padding)
        self.native = native

    def construct(self, x: Tensor) -> Tensor:
        if self.cpu_op is not None and x.dtype == mstype.float32:
            return self.cpu_op(x)
        return self.native(x)


class DepthwiseConv2d(nn.Conv2d):
    """A k x k depthwise convolution (padding k // 2, one group per channel, no bias): an ``nn.Conv2d``
    with the same parameter. A 3x3 one is computed by the CPU fast kernels (``kernels.cpu_ops``) when they
    are enabled as it is built; 5x5 and 7x7 ones (ShuffleNetV2+), and any on other devices, by
    MindSpore's convolution."""

    def __init__(self, channels: int, stride: int = 1, kernel_size: int = 3) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"depthwise kernel size must be odd, got {kernel_size}")
        super().__init__(channels, channels, kernel_size=kernel_size, stride=stride, pad_mode="pad",
                         padding=kernel_size // 2, group=channels)
        fast = kernel_size == 3 and cpu_ops.enabled()
        self.cpu_op = cpu_ops.depthwise_conv_3x3(stride) if fast else None

    def construct(self, x: Tensor) -> Tensor:
        if self.cpu_op is not None and x.dtype == mstype.float32 and self.weight.dtype == mstype.float32:
            output = self.cpu_op(x, self.weight)
        else:
            output = self.conv2d(x, self.weight)
        if self.has_bias:  # fusion.fold_batchnorm gives it one
            output = self.bias_add(output, self.bias)
        return output


class PadValueConv2d(nn.Conv2d):
    """A convolution whose zero padding is replaced by a constant per input channel.

    Computed as ``conv(pad(x - value) + value)`` with the convolution's own padding turned off, so the
    parameters (``weight``, ``bias``) and their names are those of an ``nn.Conv2d``. Weights converted
    from the official (Megvii) code use it on the stem: that code pads its BGR 0-255 input with zeros
    (black), which after this project's mean/std normalization is ``-mean/std``, not 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 pad_value: Sequence[float], has_bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size=kernel_size, stride=stride, pad_mode="valid",
                         has_bias=has_bias)
        if len(pad_value) != in_channels:
            raise ValueError(f"pad_value needs one value per input channel ({in_channels}), got {tuple(pad_value)}")
        self.pad_value = Tensor(np.asarray(pad_value, np.float32).reshape(1, -1, 1, 1))
        # the Pad primitive (zeros), not ops.pad: MindSpore exports only the former to ONNX
        self.zero_pad = ops.Pad(((0, 0), (0, 0), (padding, padding), (padding, padding)))

    def construct(self, x: Tensor) -> Tensor:
        x = self.zero_pad(x - self.pad_value) + self.pad_value
        output = self.conv2d(x, self.weight)
        if self.has_bias:
            output = self.bias_add(output, self.bias)
        return output


def stem_conv(in_channels: int, out_channels: int, pad_value: Optional[Sequence[float]] = None) -> nn.Conv2d:
    """The 3x3 stride-2 stem convolution, padded with zeros or, given ``pad_value``, with those values."""
    if pad_value is None:
        return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, pad_mode="pad", padding=1)
    return PadValueConv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, pad_value=pad_value)


class GlobalAvgPool(nn.Cell):
    """Mean over height and width: (B, C, H, W) -> (B, C), or (B, C, 1, 1) with ``keep_dims``."""

    def __init__(self, keep_dims: bool = False) -> None:
        super().__init__()
        self.keep_dims = keep_dims

    def construct(self, x: Tensor) -> Tensor:
        return ops.mean(x, (2, 3), self.keep_dims)


class HSigmoid(nn.Cell):
    """Hard sigmoid as the official ShuffleNetV2+ computes it: ``clip(x + 3, 0, 6) / 6``."""

    def __init__(self) -> None:
        super().__init__()
        self.relu6 = nn.ReLU6()  # exports to ONNX as Clip

    def construct(self, x: Tensor) -> Tensor:
        return self.relu6(x + 3.0) / 6.0


class HSwish(nn.Cell):
    """Hard swish: ``x * clip(x + 3, 0, 6) / 6`` (ShuffleNetV2+, MobileNetV3)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = HSigmoid()

    def construct(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


ACTIVATIONS = {"relu": nn.ReLU, "hswish": HSwish}
GATES = {"sigmoid": nn.Sigmoid, "hsigmoid": HSigmoid}


def activation(name: str) -> nn.Cell:
    """A new activation cell by name: "relu" or "hswish"."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class SqueezeExcite(nn.Cell):
    """Squeeze-and-excitation: ``x * gate(expand(relu([bn](reduce(mean_hw(x))))))``.

    ``reduce`` and ``expand`` are 1x1 convs on the pooled (B, C, 1, 1) map, drawn Normal(0, 0.01) as the
    official code draws them. The official family uses three forms: ShuffleNetV2+ (``reduced=C/4``,
    BatchNorm, no biases, hard sigmoid), V2.Large (``reduced=C``, biases, sigmoid) and V2.ExLarge
    (``reduced=C/4``, biases, sigmoid).

    Args:
        channels: C, the channels of the input.
        reduced: channels between ``reduce`` and ``expand``.
        gate: "sigmoid" or "hsigmoid".
        norm: a BatchNorm after ``reduce``.
        bias: biases on both convs.
    """

    def __init__(self, channels: int, reduced: int, gate: str = "sigmoid", norm: bool = False,
                 bias: bool = True) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"unknown gate {gate!r}: choose one of {', '.join(GATES)}")
        self.pool = GlobalAvgPool(keep_dims=True)
        layers = [nn.Conv2d(channels, reduced, kernel_size=1, has_bias=bias)]
        if norm:
            layers.append(nn.BatchNorm2d(reduced))
        layers.append(nn.ReLU())
        self.reduce = nn.SequentialCell(layers)
        self.expand = nn.Conv2d(reduced, channels, kernel_size=1, has_bias=bias)
        self.gate = GATES[gate]()
        self.reduce[0].init_sigma = self.expand.init_sigma = 0.01

    def construct(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.reduce(self.pool(x))))


class ChannelShuffle(nn.Cell):
    """V1's channel shuffle, as MindCV (and the official code) compute it: reshape to
    (B, C/g, g, H, W), swap the two channel axes, reshape back. Output channel ``k * C/g + j`` is
    input channel ``j * g + k``."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.transpose = ops.Transpose()

    def construct(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        # -1 for the batch, so that an exported graph (ONNX) keeps a dynamic batch axis
        x = ops.reshape(x, (-1, c // self.groups, self.groups, h, w))
        x = self.transpose(x, (0, 2, 1, 3, 4))
        return ops.reshape(x, (-1, c, h, w))


class EvenOddSplit(nn.Cell):
    """Split (B, C, H, W) into its even and odd channels, each (B, C/2, H, W).

    This is V2's channel shuffle in MindCV's layout. Written as a reshape and a split along the new
    axis, a training step through it is 1.3-1.95x faster on CPU than through MindCV's
    reshape-transpose-reshape (which moves the batch axis), and shufflenet_v2_x1_0 trains 1.58x faster
    with it; strided slices (``x[:, 1::2]``) cannot be used, since MindSpore 2.10's CPU
    StridedSliceGrad fails for batches above 1 (see ``benchmarks/experiments/bench_cpu_layers.py``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.split = ops.Split(axis=2, output_num=2)

    def construct(self, x: Tensor):
        _, c, h, w = x.shape
        # -1 for the batch, so that an exported graph (ONNX) keeps a dynamic batch axis
        even, odd = self.split(ops.reshape(x, (-1, c // 2, 2, h, w)))
        return ops.reshape(even, (-1, c // 2, h, w)), ops.reshape(odd, (-1, c // 2, h, w))


def classifier_dropout(drop_rate: float) -> Optional[nn.Dropout]:
    """Dropout before the classifier (the official V2 2.0x uses 0.2), or None for 0; it has no parameters, so
    parameter names stay MindCV's either way."""
    if not 0 <= drop_rate < 1:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    return nn.Dropout(p=drop_rate) if drop_rate > 0 else None


def init_like_mindcv(net: nn.Cell) -> None:
    """MindCV's (and Megvii's) initialisation: convs Normal(0, 1/fan-in channels), the stem convs
    Normal(0, 0.01), the classifier Normal(0, 0.01), biases zero. BatchNorm keeps gamma 1, beta 0. A conv
    with an ``init_sigma`` attribute (the squeeze-and-excitation convs) is drawn with that sigma."""
    for name, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            sigma = getattr(cell, "init_sigma", None)
            if sigma is None:
                sigma = 0.01 if "first" in name else 1.0 / cell.weight.shape[1]
            cell.weight.set_data(init.initializer(init.Normal(sigma, 0), cell.weight.shape, cell.weight.dtype))
        elif isinstance(cell, nn.Dense):
            cell.weight.set_data(init.initializer(init.Normal(0.01, 0), cell.weight.shape, cell.weight.dtype))
        else:
            continue
        if cell.bias is not None:
            cell.bias.set_data(init.initializer("zeros", cell.bias.shape, cell.bias.dtype))
