"""Reference networks computed the way MindCV computes them, for checking semantics and checkpoints.

They follow MindCV's code paths where this project's differ for speed: V2's channel split by
reshape-transpose-reshape, V1's shuffle by a 5-D transpose, and (``v1_split_convs=True``) MindCV main's
V1 layout with each grouped 1x1 conv split into g dense convs and pools padded on every side. Their
parameter names are MindCV's, so their checkpoints are MindCV checkpoints.
"""

from __future__ import annotations

from mindspore import nn, ops

from mindcv_shufflenet.models.layers import init_like_mindcv


def _max_pool(symmetric: bool) -> nn.Cell:
    if symmetric:
        return nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
    return nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")


def _stem(in_channels: int, width: int) -> nn.SequentialCell:
    return nn.SequentialCell(
        nn.Conv2d(in_channels, width, 3, stride=2, pad_mode="pad", padding=1), nn.BatchNorm2d(width), nn.ReLU())


class RefV2Block(nn.Cell):
    def __init__(self, cin: int, cout: int, mid: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        out = cout - cin
        self.branch_main = nn.SequentialCell(
            nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride=stride, pad_mode="pad", padding=1, group=mid), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, out, 1), nn.BatchNorm2d(out), nn.ReLU())
        if stride == 2:
            self.branch_proj = nn.SequentialCell(
                nn.Conv2d(cin, cin, 3, stride=2, pad_mode="pad", padding=1, group=cin), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, cin, 1), nn.BatchNorm2d(cin), nn.ReLU())

    def construct(self, x):
        if self.stride == 1:
            b, c, h, w = x.shape
            x = ops.reshape(x, (b * c // 2, 2, h * w))
            x = ops.transpose(x, (1, 0, 2))
            x = ops.reshape(x, (2, -1, c // 2, h, w))
            return ops.concat((x[0], self.branch_main(x[1])), axis=1)
        return ops.concat((self.branch_proj(x), self.branch_main(x)), axis=1)


class RefShuffleNetV2(nn.Cell):
    def __init__(self, channels, num_classes: int = 1000, in_channels: int = 3, symmetric_pool: bool = False):
        super().__init__()
        stem, *stages, last = channels
        self.first_conv = _stem(in_channels, stem)
        self.max_pool = _max_pool(symmetric_pool)
        blocks, width = [], stem
        for cout, repeats in zip(stages, (4, 8, 4)):
            for i in range(repeats):
                blocks.append(RefV2Block(width if i == 0 else width // 2, cout, cout // 2, 2 if i == 0 else 1))
                width = cout
        self.features = nn.SequentialCell(blocks)
        self.conv_last = nn.SequentialCell(nn.Conv2d(width, last, 1), nn.BatchNorm2d(last), nn.ReLU())
        self.classifier = nn.Dense(last, num_classes, has_bias=False)
        init_like_mindcv(self)

    def construct(self, x):
        x = self.conv_last(self.features(self.max_pool(self.first_conv(x))))
        return self.classifier(ops.mean(x, (2, 3)))


class SplitConv(nn.Cell):
    """MindCV main's GroupConv: g dense 1x1 convs on g channel slices."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.convs = nn.CellList([nn.Conv2d(cin // groups, cout // groups, 1) for _ in range(groups)])

    def construct(self, x):
        parts = ops.split(x, x.shape[1] // self.groups, axis=1)
        outs = ()
        for i in range(self.groups):
            outs = outs + (self.convs[i](parts[i]),)
        return ops.concat(outs, axis=1)


class RefV1Block(nn.Cell):
    def __init__(self, cin, cout, mid, stride, groups, first, split_convs, symmetric_pool):
        super().__init__()
        self.stride, self.groups = stride, groups
        out = cout - cin if stride == 2 else cout
        g1 = 1 if first else groups

        def pw(a, b, g):
            return SplitConv(a, b, g) if split_convs else nn.Conv2d(a, b, 1, group=g)

        self.branch_main_1 = nn.SequentialCell(pw(cin, mid, g1), nn.BatchNorm2d(mid), nn.ReLU())
        self.branch_main_2 = nn.SequentialCell(
            nn.Conv2d(mid, mid, 3, stride=stride, pad_mode="pad", padding=1, group=mid), nn.BatchNorm2d(mid),
            pw(mid, out, groups), nn.BatchNorm2d(out))
        if stride == 2:
            self.branch_proj = (nn.AvgPool2d(3, 2, pad_mode="pad", padding=1, count_include_pad=True)
                                if symmetric_pool else nn.AvgPool2d(3, 2, pad_mode="same"))
        self.relu = nn.ReLU()

    def construct(self, x):
        out = self.branch_main_1(x)
        if self.groups > 1:
            b, c, h, w = out.shape
            out = ops.reshape(out, (b, c // self.groups, self.groups, h, w))
            out = ops.transpose(out, (0, 2, 1, 3, 4))
            out = ops.reshape(out, (b, c, h, w))
        out = self.branch_main_2(out)
        if self.stride == 1:
            return self.relu(x + out)
        return self.relu(ops.concat((self.branch_proj(x), out), axis=1))


class RefShuffleNetV1(nn.Cell):
    def __init__(self, channels, groups, num_classes=1000, in_channels=3, split_convs=False, symmetric_pool=False):
        super().__init__()
        stem, *stages = channels
        self.first_conv = _stem(in_channels, stem)
        self.max_pool = _max_pool(symmetric_pool)
        blocks, width = [], stem
        for s, (cout, repeats) in enumerate(zip(stages, (4, 8, 4))):
            for i in range(repeats):
                blocks.append(RefV1Block(width, cout, cout // 4, 2 if i == 0 else 1, groups, s == 0 and i == 0,
                                         split_convs, symmetric_pool))
                width = cout
        self.features = nn.SequentialCell(blocks)
        self.classifier = nn.Dense(width, num_classes, has_bias=False)
        init_like_mindcv(self)

    def construct(self, x):
        x = self.features(self.max_pool(self.first_conv(x)))
        return self.classifier(ops.mean(x, (2, 3)))
