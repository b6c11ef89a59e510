"""The ShuffleNet V2 paper's four controlled experiments (section 2, Tables 1-4), run on this device.

    python benchmarks/experiments/guidelines.py [--scales 1,2,4] [--repeats 10] [--setups gpu,cpu] \
        [--out-dir benchmarks/guidelines]

Each experiment stacks 10 identical blocks with random weights on a 56x56 input and times inference
(graph mode). The paper timed two setups, and both are rebuilt here with the paper's channel counts:
"gpu" (the paper's GTX 1080Ti figures: batch 8, speed in batches/s) and "cpu" (its ARM or CPU figures:
batch 1, images/s). The variants of one table are timed round-robin and medians are taken; every
table gives each variant's speed and its speed relative to the table's first row, beside the same
for the paper's figures (x1 scale; ../shared/reference/shufflenet-facts.md), so that the two can be
compared although the hardware differs.

- G1 (Table 1): each block is conv1x1 c1->c2 then conv1x1 c2->c1, c1*c2 held constant.
- G2 (Table 2): each block is a 1x1 group conv c->c, c growing with the groups to hold FLOPs.
- G3 (Table 3): n-fragment-series = n 1x1 convs in a row at width c/sqrt(n); n-fragment-parallel =
  n 1x1 convs c->c/n side by side on the same input, concatenated; both match the FLOPs of one c->c conv.
- G4 (Table 4): a ResNet bottleneck (1x1 4c->c, 3x3 c->c, 1x1 c->4c), with and without its ReLUs and
  its shortcut.

Scales x2 and x4 double and quadruple the channel counts (about 4x and 16x the FLOPs), as the paper's
columns do; the paper's own figures are quoted at x1 only. Writes ``guidelines.md``, ``guidelines.json``
and ``guidelines.png`` into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs a kernel)

# isort: split
import mindspore as ms
from mindspore import Tensor, nn, ops

from mindcv_shufflenet import runtime

BLOCKS = 10
SIZE = 56
SETUPS = {"gpu": {"batch": 8, "unit": "batches/s", "paper": "GPU (1080Ti) batches/s"},
          "cpu": {"batch": 1, "unit": "img/s", "paper": "ARM / CPU img/s"}}


# --- the blocks --------------------------------------------------------------------------------------
def conv1x1(cin: int, cout: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, group=groups, has_bias=False)


class G1Block(nn.Cell):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.a, self.b = conv1x1(c1, c2), conv1x1(c2, c1)

    def construct(self, x: Tensor) -> Tensor:
        return self.b(self.a(x))


class Series(nn.Cell):
    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        self.convs = nn.SequentialCell([conv1x1(c, c) for _ in range(n)])

    def construct(self, x: Tensor) -> Tensor:
        return self.convs(x)


class Parallel(nn.Cell):
    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.convs = nn.CellList([conv1x1(c, c // n) for _ in range(n)])
        self.concat = ops.Concat(axis=1)

    def construct(self, x: Tensor) -> Tensor:
        outs = ()
        for k in range(self.n):
            outs = outs + (self.convs[k](x),)
        return self.concat(outs)


class Bottleneck(nn.Cell):
    def __init__(self, c: int, relu: bool, shortcut: bool) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = conv1x1(4 * c, c), nn.Conv2d(c, c, 3, has_bias=False), conv1x1(c, 4 * c)
        self.use_relu, self.shortcut = relu, shortcut
        self.relu = nn.ReLU()

    def construct(self, x: Tensor) -> Tensor:
        y = self.c1(x)
        if self.use_relu:
            y = self.relu(y)
        y = self.c2(y)
        if self.use_relu:
            y = self.relu(y)
        y = self.c3(y)
        if self.shortcut:
            y = y + x
        if self.use_relu:
            y = self.relu(y)
        return y


@dataclass
class Variant:
    label: str       # the paper's row name
    detail: str      # channels as built
    in_channels: int
    build: Callable[[], nn.Cell]
    paper: Optional[float]  # the paper's figure at x1 in this setup (None: not quoted)


def _stack(block: Callable[[], nn.Cell]) -> Callable[[], nn.Cell]:
    return lambda: nn.SequentialCell([block() for _ in range(BLOCKS)])


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(math.ceil(round(value, 6) / multiple)) * multiple)


# The paper's setups and figures at x1 (shufflenet-facts.md).
G1_X1 = {"gpu": [((128, 128), 1480), ((90, 180), 1296), ((52, 312), 876), ((36, 432), 748)],
         "cpu": [((32, 32), 76.2), ((22, 44), 72.9), ((13, 78), 69.1), ((9, 108), 57.6)]}
G2_X1 = {"gpu": [(1, 128, 2451), (2, 180, 1725), (4, 256, 1026), (8, 360, 634)],
         "cpu": [(1, 64, 40.0), (2, 90, 35.0), (4, 128, 32.9), (8, 180, 27.8)]}
G3_X1 = {"gpu": (128, [2446, 1790, 752, 1537, 691]), "cpu": (64, [40.2, 38.6, 38.4, 33.4, 35.0])}
G4_X1 = {"gpu": (32, [2427, 2647, 2672, 2842]), "cpu": (32, [56.7, 61.9, 57.3, 66.3])}


def table_variants(table: int, setup: str, scale: int) -> List[Variant]:
    """The rows of one of the paper's tables in one setup, with channels multiplied by ``scale``."""
    keep = scale == 1
    if table == 1:
        rows = []
        for ratio, ((c1, c2), fig) in zip(("1:1", "1:2", "1:6", "1:12"), G1_X1[setup]):
            a, b = c1 * scale, c2 * scale
            rows.append(Variant(f"c1:c2 = {ratio}", f"({a}, {b})", a,
                                _stack(lambda a=a, b=b: G1Block(a, b)), fig if keep else None))
        return rows
    if table == 2:
        rows = []
        for g, c, fig in G2_X1[setup]:
            width = _round_to(c * scale, g)
            rows.append(Variant(f"g = {g}", f"c = {width}", width,
                                _stack(lambda w=width, g=g: conv1x1(w, w, g)), fig if keep else None))
        return rows
    if table == 3:
        c, figs = G3_X1[setup]
        c *= scale
        c2 = round(c / math.sqrt(2))  # the width at which two fragments in series keep the FLOPs of one
        specs = [("1-fragment", c, lambda c=c: Series(c, 1)),
                 ("2-fragment-series", c2, lambda w=c2: Series(w, 2)),
                 ("4-fragment-series", c // 2, lambda w=c // 2: Series(w, 4)),
                 ("2-fragment-parallel", c, lambda c=c: Parallel(c, 2)),
                 ("4-fragment-parallel", c, lambda c=c: Parallel(c, 4))]
        return [Variant(label, f"c = {width}", width, _stack(block), fig if keep else None)
                for (label, width, block), fig in zip(specs, figs)]
    if table == 4:
        c, figs = G4_X1[setup]
        c *= scale
        specs = [("ReLU + shortcut", True, True), ("ReLU, no shortcut", True, False),
                 ("shortcut, no ReLU", False, True), ("neither", False, False)]
        return [Variant(label, f"c = {c}", 4 * c, _stack(lambda r=relu, s=short, c=c: Bottleneck(c, r, s)),
                        fig if keep else None)
                for (label, relu, short), fig in zip(specs, figs)]
    raise ValueError(f"unknown table {table}: the paper's guideline tables are 1-4")


# --- measuring ---------------------------------------------------------------------------------------
@dataclass
class Row:
    table: int
    setup: str
    scale: int
    label: str
    detail: str
    speed: float            # measured, in the setup's unit
    relative: float         # measured speed / the table's first row
    paper: Optional[float]
    paper_relative: Optional[float]
    samples_ms: List[float] = field(default_factory=list)


def measure_table(table: int, setup: str, scale: int, repeats: int) -> List[Row]:
    """Time the rows of one table round-robin (inference, graph mode); medians."""
    batch = SETUPS[setup]["batch"]
    rng = np.random.default_rng(0)
    variants = table_variants(table, setup, scale)
    nets, inputs, times = [], [], []
    for v in variants:
        net = v.build()
        net.set_train(False)
        x = Tensor(rng.standard_normal((batch, v.in_channels, SIZE, SIZE)).astype(np.float32))
        net(x).asnumpy()  # compile
        net(x).asnumpy()  # warm
        nets.append(net)
        inputs.append(x)
        times.append([])
    calls = max(1, 8 // batch)  # several calls per sample at batch 1, so that a sample is not too short
    for _ in range(repeats):
        for net, x, t in zip(nets, inputs, times):
            start = time.perf_counter()
            for _ in range(calls):
                net(x).asnumpy()
            t.append((time.perf_counter() - start) / calls * 1e3)
    speeds = [(batch if setup == "cpu" else 1) / (np.median(t) / 1e3) for t in times]
    first_paper = variants[0].paper
    return [Row(table, setup, scale, v.label, v.detail, s, s / speeds[0], v.paper,
                v.paper / first_paper if v.paper is not None and first_paper else None, t)
            for v, s, t in zip(variants, speeds, times)]


TITLES = {1: "Table 1 (G1): equal channel width minimises memory access cost",
          2: "Table 2 (G2): group convolution increases memory access cost",
          3: "Table 3 (G3): network fragmentation reduces parallelism",
          4: "Table 4 (G4): element-wise operations are not negligible"}


def verdict(rows: Sequence[Row]) -> str:
    """Does the guideline hold in these measurements: is the paper's reference row (row 0: 1:1, g=1,
    1-fragment, no extra element-wise op inverted: see below) the fastest, and by how much?"""
    table = rows[0].table
    if table == 4:  # G4: the variant without ReLU and shortcut should be the fastest, the full one slowest
        full, none = rows[0].speed, rows[-1].speed
        return (f"removing ReLU and shortcut: {none / full:.2f}x the speed "
                f"({'holds' if none > full * 1.02 else 'does not hold'} here; paper "
                f"{(rows[-1].paper or 0) / (rows[0].paper or 1):.2f}x)" if rows[0].paper else
                f"removing ReLU and shortcut: {none / full:.2f}x the speed "
                f"({'holds' if none > full * 1.02 else 'does not hold'} here)")
    others = [r.relative for r in rows[1:]]
    worst = min(others)
    holds = all(x < 1.02 for x in others)
    return (f"{rows[0].label} is {'the fastest' if holds else 'not the fastest'}; the others run at "
            f"{', '.join(f'{x:.2f}' for x in others)} of its speed ({'holds' if holds else 'does not hold'} "
            f"here; slowest {worst:.2f})")


def markdown(rows: Sequence[Row], info: Dict[str, object]) -> str:
    lines = [f"Command: `{info['command']}`", "",
             f"Device: {info['device']} ({info['cpu']}, {info['cores']} cores), MindSpore {info['mindspore']}, "
             f"graph mode, float32, inference; {BLOCKS} blocks, {SIZE}x{SIZE} input; medians of "
             f"{info['repeats']} round-robin rounds. \"rel\" is the speed relative to the table's first row.", ""]
    keys = list(dict.fromkeys((r.table, r.setup) for r in rows))
    for table, setup in keys:
        spec = SETUPS[setup]
        lines += [f"### {TITLES[table]}: {setup} setup (batch {spec['batch']}, {spec['unit']})", ""]
        scales = sorted({r.scale for r in rows if r.table == table and r.setup == setup})
        head = "| variant | " + " | ".join(f"x{s} channels | x{s} ours | x{s} rel" for s in scales) + \
            f" | paper {spec['paper']} (x1) | paper rel |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        labels = list(dict.fromkeys(r.label for r in rows if r.table == table and r.setup == setup))
        for label in labels:
            cells = []
            paper = paper_rel = None
            for s in scales:
                r = next(r for r in rows if (r.table, r.setup, r.scale, r.label) == (table, setup, s, label))
                cells.append(f"{r.detail} | {r.speed:.1f} | {r.relative:.2f}")
                if s == 1:
                    paper, paper_rel = r.paper, r.paper_relative
            lines.append(f"| {label} | " + " | ".join(cells) +
                         f" | {paper if paper is not None else '-'} | "
                         f"{f'{paper_rel:.2f}' if paper_rel is not None else '-'} |")
        lines.append("")
        for s in scales:
            sub = [r for r in rows if (r.table, r.setup, r.scale) == (table, setup, s)]
            lines.append(f"- x{s}: {verdict(sub)}")
        lines.append("")
    return "\n".join(lines)


def chart(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r.table, r.setup) for r in rows))
    cols = min(4, len(keys))
    nrows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols + 1, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, (table, setup) in zip(axes.flat, keys):
        sub = [r for r in rows if (r.table, r.setup) == (table, setup)]
        labels = list(dict.fromkeys(r.label for r in sub))
        scales = sorted({r.scale for r in sub})
        series = [(f"here x{s}", [next(r.relative for r in sub if r.scale == s and r.label == lab) for lab in labels])
                  for s in scales]
        paper = [next((r.paper_relative for r in sub if r.scale == 1 and r.label == lab), None) for lab in labels]
        if all(p is not None for p in paper):
            series.append(("paper " + ("GPU" if setup == "gpu" else "ARM/CPU"), paper))
        width = 0.8 / len(series)
        for i, (name, vals) in enumerate(series):
            ax.bar(np.arange(len(labels)) + i * width, vals, width, label=name)
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.set_xticks(np.arange(len(labels)) + width * (len(series) - 1) / 2)
        ax.set_xticklabels(labels, rotation=50, ha="right", fontsize=7)
        ax.set_title(f"Table {table}, {setup} setup", fontsize=8)
        ax.set_ylabel("speed relative to first row", fontsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(info: Dict[str, object]) -> str:
    return (f"ShuffleNet V2 guidelines measured on {info['device']} ({info['cpu']}); "
            f"bars: speed relative to each table's first row")


def _ints(text: str) -> List[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="CPU", choices=["CPU", "Ascend"])
    parser.add_argument("--tables", default="1,2,3,4")
    parser.add_argument("--setups", default="gpu,cpu", help="gpu (batch 8) and/or cpu (batch 1)")
    parser.add_argument("--scales", default="1,2,4", help="channel multipliers (the paper's x1, x2, x4)")
    parser.add_argument("--repeats", type=int, default=10, help="round-robin rounds per table")
    parser.add_argument("--out-dir", default="benchmarks/guidelines")
    parser.add_argument("--replot", metavar="JSON", help="rewrite the table and chart from a saved guidelines.json")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        rows = [Row(**r) for r in saved["rows"]]
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "guidelines.md").write_text(markdown(rows, saved["info"]))
        chart(rows, out / "guidelines.png", _title(saved["info"]))
        print(f"wrote {out / 'guidelines.md'}, {out / 'guidelines.png'}")
        return 0
    tables, scales = _ints(args.tables), _ints(args.scales)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    for s in setups:
        if s not in SETUPS:
            raise ValueError(f"unknown setup {s!r}: choose gpu or cpu")
    if any(t not in TITLES for t in tables):
        raise ValueError("--tables takes numbers from 1 to 4")
    if args.repeats < 1 or not scales or min(scales) < 1:
        raise ValueError("--repeats and --scales must be at least 1")
    runtime.init_runtime(device=args.device, mode="graph", jit_level="O2" if args.device == "Ascend" else None,
                         seed=0)
    import os
    import platform

    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: Dict[str, object] = {"device": args.device, "cpu": cpu, "cores": os.cpu_count(),
                               "mindspore": ms.__version__, "repeats": args.repeats,
                               "command": "python benchmarks/experiments/guidelines.py " + " ".join(sys.argv[1:])}
    rows: List[Row] = []
    for table in tables:
        for setup in setups:
            for scale in scales:
                got = measure_table(table, setup, scale, args.repeats)
                rows += got
                print(f"table {table} {setup} x{scale}: " +
                      ", ".join(f"{r.label} {r.speed:.1f} ({r.relative:.2f})" for r in got), flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, info)
    (out / "guidelines.md").write_text(text)
    (out / "guidelines.json").write_text(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=1))
    chart(rows, out / "guidelines.png", _title(info))
    print()
    print(text)
    print(f"wrote {out / 'guidelines.md'}, {out / 'guidelines.json'}, {out / 'guidelines.png'}")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
