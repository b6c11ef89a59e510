"""CPU training-step time of the ways ShuffleNet's channel operations can be written, side by side.

    python benchmarks/experiments/bench_cpu_layers.py [--repeats 7] [--batch 32] [--skip-networks]

Every variant computes the same function (checked before timing). Variants of one comparison are timed
round-robin, so that load from other processes hits them alike; the table gives medians and each
variant's time relative to the one this project uses (ratio > 1: slower than ours).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)

# isort: split
from mindspore import Tensor, nn, ops

from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.models.layers import ChannelShuffle, EvenOddSplit


# --- the alternatives -------------------------------------------------------------------------------
class TransposeSplit(nn.Cell):
    """MindCV's V2 split: reshape (B*C/2, 2, HW), transpose, reshape (2, B, C/2, H, W)."""

    def construct(self, x):
        b, c, h, w = x.shape
        x = ops.reshape(ops.transpose(ops.reshape(x, (b * c // 2, 2, h * w)), (1, 0, 2)), (2, -1, c // 2, h, w))
        return x[0], x[1]


class StridedSplit(nn.Cell):
    """x[:, 0::2], x[:, 1::2]: fast forward, but MindSpore 2.10's CPU StridedSliceGrad fails for batch > 1."""

    def construct(self, x):
        return x[:, 0::2], x[:, 1::2]


class GatherShuffle(nn.Cell):
    """V1's shuffle as one gather with the permutation index."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        per = channels // groups
        out = np.arange(channels)
        self.index = Tensor(((out % per) * groups + out // per).astype(np.int32))

    def construct(self, x):
        return ops.gather(x, self.index, 1)


class SplitConv(nn.Cell):
    """MindCV main's V1 layout: a grouped 1x1 conv as g dense convs on channel slices."""

    def __init__(self, grouped: nn.Conv2d):
        super().__init__()
        g = grouped.group
        self.groups = g
        self.convs = nn.CellList([nn.Conv2d(grouped.in_channels // g, grouped.out_channels // g, 1) for _ in range(g)])
        for k, piece in enumerate(np.split(grouped.weight.asnumpy(), g, axis=0)):
            self.convs[k].weight.set_data(Tensor(piece))
        self.split = ops.Split(axis=1, output_num=g)
        self.concat = ops.Concat(axis=1)

    def construct(self, x):
        parts = self.split(x)
        outs = ()
        for k in range(self.groups):
            outs = outs + (self.convs[k](parts[k]),)
        return self.concat(outs)


# --- harness ----------------------------------------------------------------------------------------
class MeanSquare(nn.Cell):
    def construct(self, y, label):
        return (y * y).mean()


class Around(nn.Cell):
    """conv -> op -> conv, so that the backward pass runs through the op (as it does in a network)."""

    def __init__(self, channels: int, op: nn.Cell, out_channels: int = 0):
        super().__init__()
        self.pre = nn.Conv2d(channels, channels, 1)
        self.op = op
        self.post = nn.Conv2d(out_channels or channels, out_channels or channels, 1)
        self.concat = ops.Concat(axis=1)

    def construct(self, x):
        y = self.op(self.pre(x))
        if isinstance(y, tuple):
            y = self.concat(y)
        return self.post(y)


def train_step(net: nn.Cell, loss: nn.Cell) -> Callable[[Tensor, Tensor], Tensor]:
    return nn.TrainOneStepCell(nn.WithLossCell(net, loss), nn.SGD(net.trainable_params(), 0.0))


def compare(title: str, nets: Dict[str, nn.Cell], x: Tensor, label: Tensor, repeats: int,
            loss: nn.Cell = None) -> None:
    """Check the variants agree, then time their training steps round-robin; print medians and ratios."""
    reference = None
    times: Dict[str, list] = {}
    steps = {}
    for name, net in nets.items():
        net.set_train(False)
        try:
            out = net(x).asnumpy()
            steps[name] = train_step(net, loss or MeanSquare())
            steps[name](x, label)  # compile, and surface backward failures
        except RuntimeError as err:
            print(f"  {name}: fails: {str(err).splitlines()[0]}")
            continue
        if reference is None:
            reference = out
        elif not np.allclose(out, reference, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{title}: {name} computes something else")
        times[name] = []
    for _ in range(repeats):
        for name in times:
            start = time.perf_counter()
            steps[name](x, label).asnumpy()
            times[name].append(time.perf_counter() - start)
    ours = np.median(times[next(iter(times))])
    batch = x.shape[0]
    for name, t in times.items():
        med = np.median(t)
        print(f"  {name:34s} {med * 1e3:9.1f} ms/step {batch / med:8.1f} img/s   x{med / ours:.2f}")


def copy_weights(dst: nn.Cell, src: nn.Cell) -> nn.Cell:
    for (_, p), (_, q) in zip(dst.parameters_and_names(), src.parameters_and_names()):
        p.set_data(Tensor(q.asnumpy()))
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--net-batch", type=int, default=16, help="batch of the whole-network comparisons")
    parser.add_argument("--skip-networks", action="store_true")
    args = parser.parse_args()
    runtime.init_runtime(device="CPU", mode="graph", seed=0)
    rng = np.random.default_rng(0)
    label = Tensor(np.zeros(1, np.float32))

    print(f"batch {args.batch}, {args.repeats} timed steps each (training step: forward, backward, SGD)")
    for c, hw in [(116, 28), (232, 14), (464, 7)]:
        x = Tensor(rng.standard_normal((args.batch, c, hw, hw)).astype(np.float32))
        base = Around(c, EvenOddSplit())
        nets = {"ours: reshape + split": base,
                "MindCV: reshape-transpose-reshape": copy_weights(Around(c, TransposeSplit()), base),
                "strided slices": copy_weights(Around(c, StridedSplit()), base)}
        print(f"V2 even/odd split, {c} channels at {hw}x{hw}")
        compare("split", nets, x, label, args.repeats)

    for c, hw, g in [(60, 28, 3), (120, 14, 3), (96, 28, 8), (192, 14, 8)]:
        x = Tensor(rng.standard_normal((args.batch, c, hw, hw)).astype(np.float32))
        base = Around(c, ChannelShuffle(g))
        nets = {"ours (= MindCV): 5-D transpose": base, "gather": copy_weights(Around(c, GatherShuffle(c, g)), base)}
        print(f"V1 channel shuffle, {c} channels at {hw}x{hw}, g={g}")
        compare("shuffle", nets, x, label, args.repeats)

    for cin, cout, hw, g in [(240, 60, 28, 3), (60, 240, 28, 3), (480, 120, 14, 3), (384, 96, 28, 8), (96, 384, 28, 8)]:
        x = Tensor(rng.standard_normal((args.batch, cin, hw, hw)).astype(np.float32))
        grouped = nn.Conv2d(cin, cout, 1, group=g)
        nets = {"ours (MindCV 0.3.0): grouped conv": grouped, "MindCV main: g dense convs": SplitConv(grouped)}
        print(f"V1 1x1 group conv {cin}->{cout} at {hw}x{hw}, g={g}")
        compare("group conv", nets, x, label, args.repeats)

    if not args.skip_networks:
        x = Tensor(rng.random((args.net_batch, 3, 224, 224), dtype=np.float32))
        labels = Tensor(rng.integers(0, 1000, args.net_batch).astype(np.int32))
        ours = create_model("shufflenet_v2_x1_0")
        mindcv = copy_weights(create_model("shufflenet_v2_x1_0"), ours)
        for block in mindcv.features:
            if block.stride == 1:
                block.split = TransposeSplit()
        print(f"shufflenet_v2_x1_0, batch {args.net_batch} at 224x224")
        compare("v2 network", {"ours": ours, "with MindCV's split": mindcv}, x, labels, args.repeats,
                nn.CrossEntropyLoss())

        ours = create_model("shufflenet_v1_g3_10")
        split = copy_weights(create_model("shufflenet_v1_g3_10"), ours)
        for block in split.features:
            if block.branch_main_1[0].group > 1:
                block.branch_main_1[0] = SplitConv(block.branch_main_1[0])
            block.branch_main_2[2] = SplitConv(block.branch_main_2[2])
        print(f"shufflenet_v1_g3_10, batch {args.net_batch} at 224x224")
        compare("v1 network", {"ours (grouped convs)": ours, "MindCV main layout (dense convs)": split},
                x, labels, args.repeats, nn.CrossEntropyLoss())
    return 0


if __name__ == "__main__":
    runtime.run_cli(main)
