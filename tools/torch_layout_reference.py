"""torchvision's and the official (Megvii) code's ShuffleNets, rewritten in MindSpore for the tests.

Each follows its source's forward pass line by line and names its parameters as the source does, so
``torch_state(net)`` is the state dict the source would hold (BatchNorm ``weight``, ``bias``,
``running_mean``, ``running_var``). ``TorchvisionShuffleNetV2`` is checked against real torchvision
outputs (``tests/data/torchvision_shufflenet_v2_tiny*.npz``); the official code cannot be installed, so
``MegviiShuffleNetV2/V1``, ``MegviiShuffleNetV2Plus`` and ``MegviiShuffleNetV2Large`` are transcriptions of
its ``network.py`` and ``blocks.py`` (megvii-model/ShuffleNet-Series: ShuffleNetV2/, ShuffleNetV1/,
ShuffleNetV2+/, ShuffleNetV2.Large/, ShuffleNetV2.ExLarge/), except that the final ``AvgPool2d(7)`` is a
global mean (the same at 224x224, the only size that code runs at). They run in PyNative mode only.

Shared by the tests (``tests/``) and ``tools/measure_conversion.py``; :func:`randomize` and :func:`calibrate`
give any network (these or this project's) weights under which a comparison cannot pass on untouched values.
"""

from __future__ import annotations

import numpy as np
from mindspore import nn, ops

BN_TO_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def randomize(net: nn.Cell, seed: int = 0) -> nn.Cell:
    """Give every parameter random values (BatchNorm scales and variances positive), so that a
    comparison of two networks cannot pass on untouched initial values."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    for name, p in net.parameters_and_names():
        shape = tuple(p.shape)
        if name.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("moving_mean", "beta")):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        p.set_data(ms.Tensor(value.astype(np.float32)))
    return net


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


class MegviiConvBNReLU(nn.Cell):
    """ShuffleNetV2.Large/ExLarge network.py's Conv_BN_ReLU (BatchNorm eps 1e-9 in Large, 1e-5 in ExLarge)."""

    def __init__(self, cin, cout, k_size, stride=1, padding=0, groups=1, has_relu=True, eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k_size, stride=stride, pad_mode="pad", padding=padding, group=groups)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.has_relu = has_relu

    def construct(self, x):
        x = self.bn(self.conv(x))
        return ops.relu(x) if self.has_relu else x


class MegviiFC(nn.Cell):  # ExLarge's FC: a Linear named .fc
    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Dense(cin, cout)

    def construct(self, x):
        return self.fc(x)


class MegviiExtraLabelPredict(nn.Cell):
    def __init__(self, in_channels, out_channels, num_classes, eps):
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
        self.conv = nn.SequentialCell(MegviiConvBNReLU(in_channels, out_channels, 1, 1, 0, eps=eps),
                                      MegviiConvBNReLU(out_channels, out_channels, 3, 1, 1, eps=eps))
        self.fc = nn.Dense(out_channels, num_classes)

    def construct(self, x):
        return self.fc(ops.mean(self.conv(self.maxpool(x)), (2, 3)))


class MegviiLargeBlock(nn.Cell):
    """ShuffleNetV2.Large's ShuffleV2Block (has_se=True). Its se_fc1/se_fc2 are also se_block.0/.2 (PyTorch
    lists them twice in a state dict: see ``megvii_large_state``); here they are registered once."""

    def __init__(self, in_channels, out_channels, stride, groups, has_proj):
        super().__init__()
        self.stride, self.has_proj = stride, has_proj
        if stride == 2:
            self.down = MegviiConvBNReLU(out_channels * 2, out_channels * 2, 1, eps=1e-9)
        if has_proj:
            self.proj = MegviiConvBNReLU(in_channels, out_channels, 3, stride, 1, has_relu=False, eps=1e-9)
        self.branch_main = nn.SequentialCell(
            MegviiConvBNReLU(in_channels, out_channels, 1, eps=1e-9),
            MegviiConvBNReLU(out_channels, out_channels, 3, stride, 1, groups=groups, eps=1e-9),
            MegviiConvBNReLU(out_channels, out_channels, 1, has_relu=False, eps=1e-9))
        self.se_block = nn.SequentialCell(nn.Dense(out_channels, out_channels), nn.ReLU(),
                                          nn.Dense(out_channels, out_channels), nn.Sigmoid())

    def construct(self, old_x):
        proj, x = _megvii_shuffle(old_x)
        x_proj = x
        if self.has_proj:
            proj = self.proj(proj)
        x = self.branch_main(x)
        se_scale = self.se_block(ops.mean(x, (2, 3)))
        x = x * ops.reshape(se_scale, (se_scale.shape[0], -1, 1, 1))
        if not self.has_proj:
            x = x_proj + x
        x = ops.relu(ops.concat((proj, x), axis=1))
        if self.stride == 2:
            x = self.down(x)
        return x


class MegviiExLargeBlock(nn.Cell):
    """ShuffleNetV2.ExLarge's ShuffleV2Block (has_se=True); se_fc1/se_fc2 as in ``MegviiLargeBlock``."""

    def __init__(self, in_channels, out_channels, mid_channels, stride, groups, has_proj):
        super().__init__()
        self.has_proj = has_proj
        if has_proj:
            self.proj = MegviiConvBNReLU(in_channels, out_channels - mid_channels, 3, stride, 1)
        self.branch_main = nn.SequentialCell(
            MegviiConvBNReLU(in_channels, out_channels, 1),
            MegviiConvBNReLU(out_channels, out_channels, 3, stride, 1, groups=groups),
            MegviiConvBNReLU(out_channels, out_channels, 3, 1, 1, groups=out_channels, has_relu=False),
            MegviiConvBNReLU(out_channels, mid_channels, 1, has_relu=False))
        self.se_block = nn.SequentialCell(MegviiFC(mid_channels, mid_channels // 4), nn.ReLU(),
                                          MegviiFC(mid_channels // 4, mid_channels), nn.Sigmoid())

    def construct(self, old_x):
        if self.has_proj:
            proj, x = old_x, old_x
        else:
            proj, x = _megvii_shuffle(old_x)
        x_proj = x
        if self.has_proj:
            proj = self.proj(proj)
        x = self.branch_main(x)
        se_scale = self.se_block(ops.mean(x, (2, 3)))
        x = x * ops.reshape(se_scale, (se_scale.shape[0], -1, 1, 1))
        if not self.has_proj:
            x = ops.relu(x_proj + x)
        return ops.concat((proj, x), axis=1)


class MegviiShuffleNetV2Large(nn.Cell):
    """ShuffleNetV2.Large/network.py's ShuffleNetV2 (``exlarge=False``: input BGR 0-255 minus a mean image) or
    ShuffleNetV2.ExLarge/network.py's (input BGR 0-255), with the official widths or reduced ones:
    ``stem`` (3 convs), ``outputs`` (Large: mid_outputs, each stage's output is 4x; ExLarge: the outputs),
    ``aux`` (ExLarge's predict heads' widths; Large's equal the stage outputs). Training mode returns
    ``(x, predict_14, predict_28, predict_56)`` as the official code does."""

    def __init__(self, exlarge=False, num_classes=1000, stem=None, outputs=None, repeats=None, groups=None,
                 aux=(256, 512, 1024), last=1280):
        super().__init__()
        self.exlarge = exlarge
        eps = 1e-5 if exlarge else 1e-9
        stem = stem or ((64, 128, 256) if exlarge else (64, 64, 128))
        outputs = outputs or ((320, 640, 1280, 2560) if exlarge else (64, 128, 256, 512))
        repeats = repeats or ((8, 16, 36, 10) if exlarge else (10, 10, 23, 10))
        groups = groups or (16 if exlarge else 8)
        self.first_conv = nn.SequentialCell(
            MegviiConvBNReLU(3, stem[0], 3, 2, 1, eps=eps), MegviiConvBNReLU(stem[0], stem[1], 3, 1, 1, eps=eps),
            MegviiConvBNReLU(stem[1], stem[2], 3, 1, 1, eps=eps))
        self.maxpool = nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)
        features = []
        input_channel = stem[2] if exlarge else stem[2] // 2
        for idx, (s, o) in enumerate(zip(repeats, outputs)):
            units = []
            for i in range(s):
                stride = 1 if idx == 0 or i > 0 else 2
                if exlarge:
                    units.append(MegviiExLargeBlock(input_channel, o, o // 2, stride, groups, has_proj=i == 0))
                    input_channel = o // 2
                else:
                    units.append(MegviiLargeBlock(input_channel, o * 2, stride, groups, has_proj=i == 0))
                    input_channel = o * 2
            if exlarge:
                units.append(MegviiConvBNReLU(o, o, 1))
                input_channel = o
            features.append(nn.SequentialCell(units))
        self.features = nn.CellList(features)
        stage_out = outputs if exlarge else tuple(4 * o for o in outputs)
        heads = aux if exlarge else stage_out[:3]
        self.predict_56 = MegviiExtraLabelPredict(stage_out[0], heads[0], num_classes, eps)
        self.predict_28 = MegviiExtraLabelPredict(stage_out[1], heads[1], num_classes, eps)
        self.predict_14 = MegviiExtraLabelPredict(stage_out[2], heads[2], num_classes, eps)
        if exlarge:
            self.fc = MegviiFC(stage_out[3], num_classes)
        else:
            self.conv_last = MegviiConvBNReLU(input_channel * 2, last, 3, 1, 1, eps=eps)
            self.fc = nn.Dense(last, num_classes)

    def construct(self, x):
        x = self.maxpool(self.first_conv(x))
        x56 = self.features[0](x)
        x28 = self.features[1](x56)
        x14 = self.features[2](x28)
        x = self.features[3](x14)
        if not self.exlarge:
            x = self.conv_last(x)
        x = self.fc(ops.mean(x, (2, 3)))
        if self.training:
            return x, self.predict_14(x14), self.predict_28(x28), self.predict_56(x56)
        return x


def megvii_large_state(net):
    """``torch_state`` of a ``MegviiShuffleNetV2Large`` with the official module names: its units named
    "2a", "2b", ... (Large) and every SE layer listed twice, as ``se_fc1``/``se_fc2`` and as
    ``se_block.0``/``se_block.2``, as PyTorch's state_dict lists a module registered under two names."""
    state = {}
    for name, value in torch_state(net).items():
        parts = name.split(".")
        if not net.exlarge and parts[0] == "features":
            parts[2] = f"{int(parts[1]) + 2}{chr(ord('a') + int(parts[2]))}"
        name = ".".join(parts)
        state[name] = value
        if ".se_block.0." in name or ".se_block.2." in name:
            alias = name.replace(".se_block.0.", ".se_fc1.").replace(".se_block.2.", ".se_fc2.")
            state[alias] = value
    return state


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
