"""How close the 1x1 convolutions of a ShuffleNet step come to the CPU's peak, and whether a BLAS beats them.

    python benchmarks/experiments/bench_gemm.py [--batch 32] [--repeats 15]

For the 1x1 convolution shapes of shufflenet_v2_x1_0 (forward, batch 32, float32) it times MindSpore's
``nn.Conv2d`` (oneDNN, in graph mode, as the networks run it) and the same product as a batched matrix
multiplication in numpy's BLAS (OpenBLAS in numpy's wheels), round-robin, medians; checks they agree;
and prints GFLOPS, the share of the nominal AVX2 peak (cores x clock x 32 float32 operations a cycle:
two 8-wide fused multiply-adds) and the BLAS / MindSpore time ratio (> 1: the BLAS is slower).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)

# isort: split
import mindspore as ms
from mindspore import Tensor, nn

# (input channels, output channels, height = width) of shufflenet_v2_x1_0's 1x1 convolutions, one per kind.
SHAPES = ((58, 58, 56), (116, 116, 28), (232, 232, 14), (464, 464, 7), (464, 1024, 7))
FLOPS_PER_CYCLE = 32  # AVX2: two 8-wide float32 FMA units, 2 operations each


def clock_ghz() -> float:
    """The CPU clock /proc/cpuinfo reports (nominal; NaN where it is not there)."""
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else float("nan")
    except OSError:
        return float("nan")


def _median_seconds(fns: List[Callable[[], object]], repeats: int) -> List[float]:
    for fn in fns:  # compile and warm up
        fn()
        fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    peak = cores * clock_ghz() * FLOPS_PER_CYCLE
    rng = np.random.default_rng(0)
    print(f"{cores} cores at {clock_ghz():.2f} GHz: nominal AVX2 peak {peak:.0f} GFLOPS; batch {args.batch}, float32")
    print("| 1x1 convolution | MindSpore ms | GFLOPS | of peak | BLAS ms | GFLOPS | BLAS / MindSpore |")
    print("|---|---|---|---|---|---|---|")
    for cin, cout, size in SHAPES:
        x = rng.standard_normal((args.batch, cin, size, size)).astype(np.float32)
        weight = rng.standard_normal((cout, cin, 1, 1)).astype(np.float32)
        conv = nn.Conv2d(cin, cout, 1, has_bias=False)
        conv.weight.set_data(Tensor(weight))
        x_ms = Tensor(x)
        w2, x3 = weight.reshape(cout, cin), x.reshape(args.batch, cin, size * size)
        out = np.empty((args.batch, cout, size * size), np.float32)
        ours = conv(x_ms).asnumpy().reshape(args.batch, cout, -1)
        np.testing.assert_allclose(np.matmul(w2, x3), ours, rtol=1e-4, atol=1e-3 * np.abs(ours).max())
        t_ms, t_blas = _median_seconds([lambda conv=conv, x_ms=x_ms: conv(x_ms).asnumpy(),
                                        lambda w2=w2, x3=x3, out=out: np.matmul(w2, x3, out=out)], args.repeats)
        gflop = 2 * args.batch * cin * cout * size * size / 1e9
        print(f"| {cin} -> {cout}, {size}x{size} | {t_ms * 1e3:.2f} | {gflop / t_ms:.0f} | {gflop / t_ms / peak:.0%} "
              f"| {t_blas * 1e3:.2f} | {gflop / t_blas:.0f} | {t_blas / t_ms:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
