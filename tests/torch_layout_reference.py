"""torchvision's and the official (Megvii) code's ShuffleNets, rewritten in MindSpore for the tests.

Each follows its source's forward pass line by line and names its parameters as the source does, so
``torch_state(net)`` is the state dict the source would hold (BatchNorm ``weight``, ``bias``,
``running_mean``, ``running_var``). ``TorchvisionShuffleNetV2`` is checked against real torchvision
outputs (``tests/data/torchvision_shufflenet_v2_tiny*.npz``); the official code cannot be installed, so
``MegviiShuffleNetV2/V1`` and ``MegviiShuffleNetV2Plus`` are transcriptions of its ``network.py`` and
``blocks.py`` (megvii-model/ShuffleNet-Series: ShuffleNetV2/, ShuffleNetV1/, ShuffleNetV2+/), except that
the final ``AvgPool2d(7)`` is a global mean (the same at 224x224, the only size that code runs at). They
run in PyNative mode only.
"""

from __future__ import annotations

import numpy as np
from mindspore import nn, ops

BN_TO_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def torch_state(net: nn.Cell) -> dict:
    """The network's parameters under PyTorch's names, as float32 arrays."""
    state = {}
    for name, p in net.parameters_and_names():
        head, _, last = name.rpartition(".")
        state[f"{head}.{BN_TO_TORCH.get(last, last)}"] = p.asnumpy().astype(np.float32)
    return state


def _conv(cin, cout, k, stride=1, group=1):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad" if k > 1 else "valid", padding=k // 2 if k > 1 else 0,
                     group=group)


def _channel_shuffle(x, groups):  # torchvision's: view (b, g, c/g, h, w), transpose(1, 2), flatten
    b, c, h, w = x.shape
    x = ops.reshape(x, (b, groups, c // groups, h, w))
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (b, c, h, w))


class TorchvisionUnit(nn.Cell):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        bf = oup // 2
        if stride > 1:
            self.branch1 = nn.SequentialCell(
                _conv(inp, inp, 3, stride, group=inp), nn.BatchNorm2d(inp),
                _conv(inp, bf, 1), nn.BatchNorm2d(bf), nn.ReLU())
        self.branch2 = nn.SequentialCell(
            _conv(inp if stride > 1 else bf, bf, 1), nn.BatchNorm2d(bf), nn.ReLU(),
            _conv(bf, bf, 3, stride, group=bf), nn.BatchNorm2d(bf),
            _conv(bf, bf, 1), nn.BatchNorm2d(bf), nn.ReLU())

    def construct(self, x):
        if self.stride == 1:
            half = x.shape[1] // 2
            out = ops.concat((x[:, :half], self.branch2(x[:, half:])), axis=1)
        else:
            out = ops.concat((self.branch1(x), self.branch2(x)), axis=1)
        return _channel_shuffle(out, 2)


class TorchvisionShuffleNetV2(nn.Cell):
    def __init__(self, stages_repeats, stages_out_channels, num_classes=1000):
        super().__init__()
        stem = stages_out_channels[0]
        self.conv1 = nn.SequentialCell(_conv(3, stem, 3, 2), nn.BatchNorm2d(stem), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
        cin = stem
        for i, (repeats, cout) in enumerate(zip(stages_repeats, stages_out_channels[1:4])):
            units = [TorchvisionUnit(cin, cout, 2)] + [TorchvisionUnit(cout, cout, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.SequentialCell(units))
            cin = cout
        last = stages_out_channels[-1]
        self.conv5 = nn.SequentialCell(_conv(cin, last, 1), nn.BatchNorm2d(last), nn.ReLU())
        self.fc = nn.Dense(last, num_classes)

    def construct(self, x):
        x = self.stage4(self.stage3(self.stage2(self.maxpool(self.conv1(x)))))
        return self.fc(ops.mean(self.conv5(x), (2, 3)))


class MegviiV2Unit(nn.Cell):
    def __init__(self, inp, oup, mid, stride):
        super().__init__()
        self.stride = stride
        outputs = oup - inp
        self.branch_main = nn.SequentialCell(
            _conv(inp, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(),
            _conv(mid, mid, 3, stride, group=mid), nn.BatchNorm2d(mid),
            _conv(mid, outputs, 1), nn.BatchNorm2d(outputs), nn.ReLU())
        if stride == 2:
            self.branch_proj = nn.SequentialCell(
                _conv(inp, inp, 3, stride, group=inp), nn.BatchNorm2d(inp),
                _conv(inp, inp, 1), nn.BatchNorm2d(inp), nn.ReLU())

    def construct(self, old_x):
        if self.stride == 1:  # channel_shuffle: reshape (b*c/2, 2, hw), permute, reshape (2, b, c/2, h, w)
            b, c, h, w = old_x.shape
            x = ops.transpose(ops.reshape(old_x, (b * c // 2, 2, h * w)), (1, 0, 2))
            x = ops.reshape(x, (2, -1, c // 2, h, w))
            return ops.concat((x[0], self.branch_main(x[1])), axis=1)
        return ops.concat((self.branch_proj(old_x), self.branch_main(old_x)), axis=1)


class MegviiShuffleNetV2(nn.Cell):
    """The official V2; input BGR 0-255."""

    def __init__(self, channels, num_classes=1000, stage_repeats=(4, 8, 4)):
        super().__init__()
        stem, *stages, last = channels
        self.first_conv = nn.SequentialCell(_conv(3, stem, 3, 2), nn.BatchNorm2d(stem), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
        units, cin = [], stem
        for cout, repeats in zip(stages, stage_repeats):
            for i in range(repeats):
                units.append(MegviiV2Unit(cin, cout, cout // 2, 2) if i == 0 else
                             MegviiV2Unit(cin // 2, cout, cout // 2, 1))
                cin = cout
        self.features = nn.SequentialCell(units)
        self.conv_last = nn.SequentialCell(_conv(cin, last, 1), nn.BatchNorm2d(last), nn.ReLU())
        self.classifier = nn.SequentialCell(nn.Dense(last, num_classes, has_bias=False))

    def construct(self, x):
        x = self.conv_last(self.features(self.maxpool(self.first_conv(x))))
        return self.classifier(ops.mean(x, (2, 3)))


class MegviiV1Unit(nn.Cell):
    def __init__(self, inp, oup, group, first_group, mid, stride):
        super().__init__()
        self.stride, self.group = stride, group
        outputs = oup - inp if stride == 2 else oup
        self.branch_main_1 = nn.SequentialCell(
            _conv(inp, mid, 1, group=1 if first_group else group), nn.BatchNorm2d(mid), nn.ReLU(),
            _conv(mid, mid, 3, stride, group=mid), nn.BatchNorm2d(mid))
        self.branch_main_2 = nn.SequentialCell(_conv(mid, outputs, 1, group=group), nn.BatchNorm2d(outputs))
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(3, 2, pad_mode="pad", padding=1, count_include_pad=True)

    def construct(self, old_x):
        x = self.branch_main_1(old_x)
        if self.group > 1:  # channel_shuffle: reshape (b, c/g, g, h, w), permute(0, 2, 1, 3, 4)
            b, c, h, w = x.shape
            x = ops.reshape(x, (b, c // self.group, self.group, h, w))
            x = ops.reshape(ops.transpose(x, (0, 2, 1, 3, 4)), (b, c, h, w))
        x = self.branch_main_2(x)
        if self.stride == 1:
            return ops.relu(x + old_x)
        return ops.concat((self.branch_proj(old_x), ops.relu(x)), axis=1)


class MegviiShuffleNetV1(nn.Cell):
    """The official V1; input BGR 0-255."""

    def __init__(self, channels, group, num_classes=1000, stage_repeats=(4, 8, 4)):
        super().__init__()
        stem, *stages = channels
        self.first_conv = nn.SequentialCell(_conv(3, stem, 3, 2), nn.BatchNorm2d(stem), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
        units, cin = [], stem
        for s, (cout, repeats) in enumerate(zip(stages, stage_repeats)):
            for i in range(repeats):
                units.append(MegviiV1Unit(cin, cout, group, s == 0 and i == 0, cout // 4, 2 if i == 0 else 1))
                cin = cout
        self.features = nn.SequentialCell(units)
        self.classifier = nn.SequentialCell(nn.Dense(cin, num_classes, has_bias=False))

    def construct(self, x):
        x = self.features(self.maxpool(self.first_conv(x)))
        return self.classifier(ops.mean(x, (2, 3)))


def _hard_sigmoid(x):  # the official code's torch.clamp(x + 3, 0, 6) / 6
    return ops.clamp(x + 3, 0, 6) / 6


class MegviiHS(nn.Cell):
    def construct(self, x):
        return x * _hard_sigmoid(x)


def _megvii_act(activation):
    return nn.ReLU() if activation == "ReLU" else MegviiHS()


class MegviiSELayer(nn.Cell):
    """blocks.py's SELayer (isTensor=True): SE_opr = pool, conv C->C/4, BN, ReLU, conv C/4->C."""

    def __init__(self, inplanes):
        super().__init__()
        self.SE_opr = nn.SequentialCell(
            nn.AdaptiveAvgPool2d(1), _conv(inplanes, inplanes // 4, 1), nn.BatchNorm2d(inplanes // 4), nn.ReLU(),
            _conv(inplanes // 4, inplanes, 1))

    def construct(self, x):
        return x * _hard_sigmoid(self.SE_opr(x))


def _megvii_shuffle(old_x):  # blocks.py's channel_shuffle
    b, c, h, w = old_x.shape
    x = ops.transpose(ops.reshape(old_x, (b * c // 2, 2, h * w)), (1, 0, 2))
    x = ops.reshape(x, (2, -1, c // 2, h, w))
    return x[0], x[1]


class MegviiPlusShufflenet(nn.Cell):
    """blocks.py's Shufflenet unit."""

    def __init__(self, inp, oup, base_mid_channels, ksize, stride, activation, useSE):
        super().__init__()
        self.stride = stride
        outputs = oup - inp
        layers = [_conv(inp, base_mid_channels, 1), nn.BatchNorm2d(base_mid_channels), _megvii_act(activation),
                  _conv(base_mid_channels, base_mid_channels, ksize, stride, group=base_mid_channels),
                  nn.BatchNorm2d(base_mid_channels),
                  _conv(base_mid_channels, outputs, 1), nn.BatchNorm2d(outputs), _megvii_act(activation)]
        if useSE:
            layers.append(MegviiSELayer(outputs))
        self.branch_main = nn.SequentialCell(layers)
        if stride == 2:
            self.branch_proj = nn.SequentialCell(
                _conv(inp, inp, ksize, stride, group=inp), nn.BatchNorm2d(inp),
                _conv(inp, inp, 1), nn.BatchNorm2d(inp), _megvii_act(activation))

    def construct(self, old_x):
        if self.stride == 1:
            x_proj, x = _megvii_shuffle(old_x)
            return ops.concat((x_proj, self.branch_main(x)), axis=1)
        return ops.concat((self.branch_proj(old_x), self.branch_main(old_x)), axis=1)


class MegviiPlusXception(nn.Cell):
    """blocks.py's Shuffle_Xception unit (stride 1, as the searched architecture uses it)."""

    def __init__(self, inp, oup, base_mid_channels, stride, activation, useSE):
        super().__init__()
        assert stride == 1
        outputs = oup - inp
        layers = [_conv(inp, inp, 3, stride, group=inp), nn.BatchNorm2d(inp),
                  _conv(inp, base_mid_channels, 1), nn.BatchNorm2d(base_mid_channels), _megvii_act(activation),
                  _conv(base_mid_channels, base_mid_channels, 3, stride, group=base_mid_channels),
                  nn.BatchNorm2d(base_mid_channels),
                  _conv(base_mid_channels, base_mid_channels, 1), nn.BatchNorm2d(base_mid_channels),
                  _megvii_act(activation),
                  _conv(base_mid_channels, base_mid_channels, 3, stride, group=base_mid_channels),
                  nn.BatchNorm2d(base_mid_channels),
                  _conv(base_mid_channels, outputs, 1), nn.BatchNorm2d(outputs), _megvii_act(activation)]
        if useSE:
            layers.append(MegviiSELayer(outputs))
        self.branch_main = nn.SequentialCell(layers)

    def construct(self, old_x):
        x_proj, x = _megvii_shuffle(old_x)
        return ops.concat((x_proj, self.branch_main(x)), axis=1)


class MegviiShuffleNetV2Plus(nn.Cell):
    """ShuffleNetV2+/network.py's ShuffleNetV2_Plus; input BGR 0-255."""

    def __init__(self, channels, num_classes=1000, stage_repeats=(4, 4, 8, 4),
                 architecture=(0, 0, 3, 1, 1, 1, 0, 0, 2, 0, 2, 1, 1, 0, 2, 0, 2, 1, 3, 2)):
        super().__init__()
        stem, *stages, last = channels
        self.first_conv = nn.SequentialCell(_conv(3, stem, 3, 2), nn.BatchNorm2d(stem), MegviiHS())
        units, input_channel, arch = [], stem, iter(architecture)
        for idxstage, (output_channel, numrepeat) in enumerate(zip(stages, stage_repeats)):
            activation = "HS" if idxstage >= 1 else "ReLU"
            use_se = idxstage >= 2
            for i in range(numrepeat):
                inp, outp, stride = (input_channel, output_channel, 2) if i == 0 else \
                    (input_channel // 2, output_channel, 1)
                choice = next(arch)
                if choice == 3:
                    units.append(MegviiPlusXception(inp, outp, outp // 2, stride, activation, use_se))
                else:
                    units.append(MegviiPlusShufflenet(inp, outp, outp // 2, (3, 5, 7)[choice], stride, activation,
                                                      use_se))
                input_channel = output_channel
        self.features = nn.SequentialCell(units)
        self.conv_last = nn.SequentialCell(_conv(input_channel, last, 1), nn.BatchNorm2d(last), MegviiHS())
        self.LastSE = MegviiSELayer(last)
        self.fc = nn.SequentialCell(nn.Dense(last, last, has_bias=False), MegviiHS())
        self.classifier = nn.SequentialCell(nn.Dense(last, num_classes, has_bias=False))

    def construct(self, x):
        x = self.conv_last(self.features(self.first_conv(x)))
        x = self.LastSE(ops.mean(x, (2, 3), True))
        return self.classifier(self.fc(ops.reshape(x, (x.shape[0], -1))))


def calibrate(net: nn.Cell, images: np.ndarray, seed: int = 0) -> nn.Cell:
    """Random BatchNorm scales and shifts, with moving statistics measured on ``images``, as in a trained
    network: every layer then passes a signal of unit size on and the logits depend on all of them.
    (With random statistics the signal shrinks layer by layer, and a wrong channel order in the first
    stages would change the logits by less than the tolerance.) PyNative mode."""
    import mindspore as ms

    rng = np.random.default_rng(seed)

    def measure(cell, inputs):
        x = inputs[0].asnumpy().astype(np.float64)
        cell.moving_mean.set_data(ms.Tensor(x.mean(axis=(0, 2, 3)).astype(np.float32)))
        # floored: a channel (nearly) dead on these images must not be amplified on others
        cell.moving_variance.set_data(ms.Tensor(np.maximum(x.var(axis=(0, 2, 3)), 0.1).astype(np.float32)))

    handles = []
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            cell.gamma.set_data(ms.Tensor(rng.uniform(0.5, 1.5, cell.gamma.shape).astype(np.float32)))
            cell.beta.set_data(ms.Tensor(rng.normal(0, 0.5, cell.beta.shape).astype(np.float32)))
            handles.append(cell.register_forward_pre_hook(measure))
    net.set_train(False)
    net(ms.Tensor(images))
    for handle in handles:
        handle.remove()
    return net
