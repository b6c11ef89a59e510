"""Where a training step's time goes: MindSpore's profiler over a few steps, summed by kind of operation.

    python benchmarks/experiments/profile_step.py [--model shufflenet_v2_x1_0] [--batch 32] [--steps 3] \
        [--out-dir /tmp/profile]

Runs one compiled training step (cross-entropy, SGD momentum, graph mode) a few times under
``mindspore.Profiler`` and prints the milliseconds per step spent in each kind of kernel, splitting
convolutions into depthwise (3x3, one group per channel), grouped 1x1, dense 1x1 and the stem, and
their forward, input-gradient and weight-gradient kernels.
"""

from __future__ import annotations

import argparse
import csv
import re
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs a kernel)

CONV_KINDS = {"Conv2D": "forward", "Conv2DBackpropInput": "input grad", "Conv2DBackpropFilter": "weight grad"}


def conv_kinds(net) -> Dict[str, str]:
    """Map each Conv2d cell's name to its kind: depthwise, grouped 1x1, dense 1x1, stem (dense 3x3)."""
    from mindspore import nn

    kinds = {}
    for name, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            if cell.group > 1 and cell.group == cell.in_channels:
                kinds[name] = "depthwise 3x3"
            elif cell.group > 1:
                kinds[name] = "grouped 1x1"
            elif cell.kernel_size == (1, 1):
                kinds[name] = "dense 1x1"
            else:
                kinds[name] = "stem 3x3"
    return kinds


def summarise(detail_csv: Path, kinds: Dict[str, str], steps: int) -> List[Tuple[str, float]]:
    """Milliseconds per step by kind of operation, largest first, from the profiler's
    ``cpu_op_detail_info_*.csv``. Convolution kernels are attributed to their cell through the scope in the
    kernel's full name (``.../features-SequentialCell/0-ShuffleV2Block/branch_main-SequentialCell/3-Conv2d/...``)."""
    totals: Counter = Counter()
    for row in csv.DictReader(detail_csv.open()):
        op, name = row["op_type"], row["full_op_name"]
        ms_total = float(row["op_total_time(ms)"]) / steps
        if op in CONV_KINDS:
            scope = [re.sub(r"^(\d+|[A-Za-z_][A-Za-z0-9_]*)-.*$", r"\1", part) for part in name.split("/")]
            cell = ".".join(p for p in scope if p and p not in ("Default", "Gradients", "network", "_backbone")
                            and not p.startswith(("Grad_", "Conv2D")))
            kind = kinds.get(cell, "other conv")
            totals[f"{kind}: {CONV_KINDS[op]}"] += ms_total
        elif op == "Custom":  # the CPU fast kernels (mindcv_shufflenet/kernels)
            if "DepthwiseConv2d" in name:
                layer = "depthwise 3x3"
            elif "Pool3x3" in name:
                layer = "max pool" if "max_pool-Pool3x3" in name else "avg pool"
            else:
                layer = "other"
            part = "gradients" if name.startswith("Gradients/") else "forward"
            totals[f"{layer} (fast kernel): {part}"] += ms_total
        else:
            totals[op] += ms_total
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> int:
    import mindspore as ms
    from mindspore import Tensor, nn

    from mindcv_shufflenet import create_model, runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shufflenet_v2_x1_0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out-dir", default="/tmp/mindcv_shufflenet_profile")
    args = parser.parse_args()
    runtime.init_runtime(device="CPU", mode="graph", seed=0)
    net = create_model(args.model)
    step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.CrossEntropyLoss()),
                               nn.Momentum(net.trainable_params(), 0.01, 0.9))
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((args.batch, 3, args.image_size, args.image_size), dtype=np.float32))
    y = Tensor(rng.integers(0, 1000, args.batch).astype(np.int32))
    step(x, y).asnumpy()
    step(x, y).asnumpy()
    profiler = ms.Profiler(output_path=args.out_dir)
    start = time.perf_counter()
    for _ in range(args.steps):
        step(x, y).asnumpy()
    wall = (time.perf_counter() - start) / args.steps * 1e3
    profiler.analyse()
    detail = sorted(Path(args.out_dir).rglob("cpu_op_detail_info_*.csv"), key=lambda p: p.stat().st_mtime)[-1]
    rows = summarise(detail, conv_kinds(net), args.steps)
    kernels = sum(t for _, t in rows)
    print(f"{args.model}, batch {args.batch}, {args.image_size}x{args.image_size}: {wall:.0f} ms per step "
          f"(under the profiler), {kernels:.0f} ms in kernels")
    print("| operation | ms per step | share |\n|---|---|---|")
    for name, t in rows:
        if t / kernels >= 0.005:
            print(f"| {name} | {t:.1f} | {100 * t / kernels:.1f}% |")
    return 0


if __name__ == "__main__":
    from mindcv_shufflenet import runtime

    runtime.run_cli(main)
