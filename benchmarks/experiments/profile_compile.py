"""Where the first training step's time goes: MindSpore's graph compilation, phase by phase.

    python benchmarks/experiments/profile_compile.py [--model shufflenet_v2_x1_0] [--batch 32] [--image-size 224]

Runs the first training step (cross-entropy, SGD momentum, graph mode) in a child process with MindSpore's
INFO log on (``GLOG_v=1``), and reads the log's timings back: the front end's actions (type inference,
the optimizer, task emission), the optimizer's passes that took longest, the back end's build, and the
whole ``compile_graph``. The log itself slows compilation down (it writes tens of thousands of lines), so
the shares are what to read; the first step without it is printed beside them.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

# 2026-12-01-02:44:41.730.834: date, then h:m:s.milliseconds.microseconds
STAMP = r"\d{4}-\d\d-\d\d-(\d\d):(\d\d):(\d\d)\.(\d+)\.(\d+)"


def _seconds(match: re.Match) -> float:
    h, m, s, ms, us = (int(g) for g in match.groups()[:5])
    return h * 3600 + m * 60 + s + ms / 1e3 + us / 1e6


def parse_log(text: str) -> Tuple[Dict[str, float], Dict[str, float], Dict[str, float]]:
    """(front-end actions, optimizer passes, [PROF] totals) in seconds, from a GLOG_v=1 log."""
    actions: Dict[str, float] = collections.Counter()
    passes: Dict[str, float] = collections.Counter()
    totals: Dict[str, float] = {}
    started: Dict[Tuple[str, str], float] = {}
    for line in text.splitlines():
        action = re.search(STAMP + r".*Status record: (start|end) (.+?) action", line)
        if action:
            key, t = ("action", action.group(7)), _seconds(action)
            if action.group(6) == "start":
                started[key] = t
            elif key in started:
                actions[action.group(7)] += t - started.pop(key)
            continue
        step = re.search(STAMP + r".*RunFunc\] (Start|End) (\S+)", line)
        if step:
            name = re.sub(r"\.(unchanged|changed)$", "", step.group(7))
            key, t = ("pass", name), _seconds(step)
            if step.group(6) == "Start":
                started[key] = t
            elif key in started:
                passes[re.sub(r"\.r\d+\.j\d+", "", name)] += t - started.pop(key)
            continue
        prof = re.search(r"\[PROF\](\w+) costs ([\d.]+) msec", line)
        if prof and prof.group(1) in ("compile_graph", "compile_backend_graph"):
            totals[prof.group(1)] = totals.get(prof.group(1), 0.0) + float(prof.group(2)) / 1e3
    return dict(actions), dict(passes), totals


def run_first_step(model: str, batch: int, size: int, log: bool) -> Tuple[float, str]:
    """Seconds of the first step in a fresh process (optionally with MindSpore's INFO log), and the log."""
    env = dict(os.environ)
    if log:
        env.update(GLOG_v="1", GLOG_logtostderr="1")
    proc = subprocess.run([sys.executable, __file__, "--child", "--model", model, "--batch", str(batch),
                           "--image-size", str(size)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the first step of {model} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(proc.stdout.strip().splitlines()[-1]), proc.stderr


def child(model: str, batch: int, size: int) -> None:
    import numpy as np

    import mindcv_shufflenet  # noqa: F401  (CPU defaults)
    # isort: split
    import mindspore as ms
    from mindspore import Tensor, nn

    from mindcv_shufflenet import create_model

    ms.set_context(mode=ms.GRAPH_MODE)
    net = create_model(model)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    step = nn.TrainOneStepCell(nn.WithLossCell(net, loss), nn.Momentum(net.trainable_params(), 0.01, 0.9))
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 3, size, size), dtype=np.float32))
    y = Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    start = time.perf_counter()
    step(x, y).asnumpy()
    print(time.perf_counter() - start)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shufflenet_v2_x1_0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--top", type=int, default=6, help="optimizer passes to list")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.model, args.batch, args.image_size)
        return 0
    plain, _ = run_first_step(args.model, args.batch, args.image_size, log=False)
    logged, text = run_first_step(args.model, args.batch, args.image_size, log=True)
    actions, passes, totals = parse_log(text)
    compile_s = totals.get("compile_graph", float("nan"))
    print(f"{args.model}, batch {args.batch}, {args.image_size}x{args.image_size}: first step {plain:.2f} s; "
          f"with the INFO log {logged:.2f} s, of which compile_graph {compile_s:.2f} s")
    print("| phase | seconds (logged run) | share of compile_graph |")
    print("|---|---|---|")
    rows = [(f"front end: {name}", t) for name, t in sorted(actions.items(), key=lambda kv: -kv[1]) if t >= 0.05]
    rows += [(f"  optimizer pass {name}", t) for name, t in sorted(passes.items(), key=lambda kv: -kv[1])[:args.top]]
    rows.append(("  back end: compile_backend_graph (within task_emit)",
                 totals.get("compile_backend_graph", float("nan"))))
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {t / compile_s:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
