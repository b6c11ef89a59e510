"""Speed of this project's models beside torchvision (PyTorch) and MindCV, measured in one process.

    python scripts/benchmark.py --models all --device CPU [--repeats 5] [--out-dir benchmarks/cpu]
    python scripts/benchmark.py --models shufflenet_v2_x1_0,shufflenet_v1_g3_10 --repeats 7
    python scripts/benchmark.py --models 'shufflenet_v2_*' --device Ascend      # sink mode, amp O3

Per model and framework: training throughput (one SGD-momentum step with cross-entropy, batch 32,
224x224, float32, graph mode), inference throughput at batch 32, batch-1 latency, the first training
step's time (graph compilation plus one step, in a new process as a user's run starts, and in the
benchmark's process; PyTorch has no compilation, so its first step is just that; also given as the
process's CPU time, all threads, which load from other processes inflates less than the wall time), and the peak RSS growth while the model is built and its first steps run.
``ours-native`` is this project's network on MindSpore's own kernels instead of the CPU fast kernels
(``mindcv_shufflenet/kernels``; measured when those are in use). PyTorch/torchvision
and MindCV are measured when importable (torchvision has V2 only; MindCV 0.3.0 has V2 and V1 g3/g8),
and the ratios of this project to them are given. The frameworks of one model are timed round-robin
(a step of each in turn, ``--repeats`` rounds) and medians are reported, so that load from other
processes falls on all of them alike; the ratios are the figures to read, not the absolute times.

Writes ``benchmark.md`` (tables), ``benchmark.json`` (every measurement and the machine) and
``benchmark.png`` (a chart) into ``--out-dir``.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mindcv_shufflenet  # noqa: E402,F401  (CPU defaults before MindSpore runs a kernel)
import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

from mindcv_shufflenet import create_model, kernels, list_models, runtime  # noqa: E402

OURS, NATIVE, TORCH, MINDCV = "ours", "ours-native", "torchvision", "mindcv"
FRAMEWORKS = (OURS, NATIVE, TORCH, MINDCV)


# --- memory ------------------------------------------------------------------------------------------
def _status_kb(key: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """The process's resident memory now, in MB (0 where /proc is missing)."""
    kb = _status_kb("VmRSS")
    return (kb or 0) / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The process's peak resident memory since the last reset, in MB."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kb / 1024


# --- one framework's model, ready to time ------------------------------------------------------------
@dataclass
class Runner:
    """Closures that run one training step, one batch of inference and one batch-1 inference, each
    returning only when the result is computed."""

    train: Callable[[], None]
    infer: Callable[[], None]
    latency: Callable[[], None]


@dataclass
class Result:
    model: str
    framework: str
    train_img_s: float = float("nan")
    infer_img_s: float = float("nan")
    latency_ms: float = float("nan")
    first_step_s: float = float("nan")
    first_step_cpu_s: float = float("nan")
    new_process_first_step_s: float = float("nan")  # the first step of a fresh process (as train.py's)
    new_process_first_step_cpu_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    train_step_ms: List[float] = field(default_factory=list)
    infer_ms: List[float] = field(default_factory=list)
    latency_samples_ms: List[float] = field(default_factory=list)
    error: str = ""


def _ms_runner(net: nn.Cell, batch: int, size: int, device: str, sink_steps: int) -> Runner:
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 3, size, size), dtype=np.float32))
    y = Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    x1 = Tensor(rng.random((1, 3, size, size), dtype=np.float32))
    if device == "Ascend":
        train = _ascend_sink_train(net, x, y, sink_steps)
    else:
        step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.CrossEntropyLoss()),
                                   nn.Momentum(net.trainable_params(), 0.01, 0.9))

        def train() -> None:
            step.set_train(True)
            step(x, y).asnumpy()

    def infer() -> None:
        net.set_train(False)
        net(x).asnumpy()

    def latency() -> None:
        net.set_train(False)
        net(x1).asnumpy()

    return Runner(train, infer, latency)


class _SameBatch:
    """``length`` copies of one (x, y) batch, random access, for a sunk benchmark dataset."""

    def __init__(self, x: np.ndarray, y: np.ndarray, length: int) -> None:
        self.x, self.y, self.length = x, y, length

    def __getitem__(self, index: int):
        return self.x, self.y

    def __len__(self) -> int:
        return self.length


def _ascend_sink_train(net: nn.Cell, x: Tensor, y: Tensor, sink_steps: int) -> Callable[[], None]:
    """Ascend: MindCV's setting, amp O3 with a fixed loss scale of 1024, the steps sunk to the device
    ``sink_steps`` at a time (``ms.data_sink``). One call runs ``sink_steps`` steps; the caller divides.
    Not run here (no NPU on the machine this was written on)."""
    import mindspore.dataset as ds

    net = ms.amp.auto_mixed_precision(net, "O3")
    loss = nn.CrossEntropyLoss()
    opt = nn.Momentum(net.trainable_params(), 0.01, 0.9)  # the step cell unscales the gradients itself
    step = nn.TrainOneStepWithLossScaleCell(nn.WithLossCell(net, loss), opt,
                                            scale_sense=Tensor(1024.0, ms.float32))
    step.set_train(True)
    # A source with a length: data_sink sizes the dataset by counting it, which a source without one makes
    # an endless count. The device queue loops over these sink_steps batches.
    data = ds.GeneratorDataset(_SameBatch(x.asnumpy(), y.asnumpy(), sink_steps), ["x", "y"], shuffle=False)
    sink = ms.data_sink(step, data, sink_size=sink_steps, jit_config=ms.JitConfig(jit_level="O0"))

    def train() -> None:
        out = sink()
        (out[0] if isinstance(out, tuple) else out).asnumpy()

    return train


def build_ours(name: str, batch: int, size: int, device: str, sink_steps: int) -> Runner:
    return _ms_runner(create_model(name), batch, size, device, sink_steps)


def build_ours_native(name: str, batch: int, size: int, device: str, sink_steps: int) -> Optional[Runner]:
    """This project's model on MindSpore's own kernels: the CPU fast kernels' effect, when they are on."""
    if not kernels.enabled():
        return None
    with kernels.native_kernels():
        net = create_model(name)
    return _ms_runner(net, batch, size, device, sink_steps)


def build_mindcv(name: str, batch: int, size: int, device: str, sink_steps: int) -> Optional[Runner]:
    try:
        import mindcv
    except ImportError:
        return None
    if name not in mindcv.list_models():
        return None
    return _ms_runner(mindcv.create_model(name), batch, size, device, sink_steps)


def build_torchvision(name: str, batch: int, size: int) -> Optional[Runner]:
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    builder = getattr(torchvision.models, name, None)
    if builder is None:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    model = builder()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen)
    y = torch.randint(0, 1000, (batch,), generator=gen)
    x1 = torch.rand(1, 3, size, size, generator=gen)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()

    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            model(x).sum().item()

    def latency() -> None:
        model.eval()
        with torch.inference_mode():
            model(x1).sum().item()

    return Runner(train, infer, latency)


# --- measuring ---------------------------------------------------------------------------------------
def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def benchmark_model(name: str, frameworks: Sequence[str], batch: int, size: int, repeats: int,
                    latency_calls: int, device: str, sink_steps: int) -> List[Result]:
    """Build each framework's version of ``name``, then time them round-robin; medians per framework."""
    runners: Dict[str, Runner] = {}
    results: Dict[str, Result] = {}
    for fw in frameworks:
        result = Result(name, fw)
        gc.collect()
        base = rss_mb()
        reset_peak_rss()
        try:
            if fw == OURS:
                runner = build_ours(name, batch, size, device, sink_steps)
            elif fw == NATIVE:
                runner = build_ours_native(name, batch, size, device, sink_steps)
            elif fw == MINDCV:
                runner = build_mindcv(name, batch, size, device, sink_steps)
            else:
                runner = build_torchvision(name, batch, size) if device == "CPU" else None
            if runner is None:
                continue
            cpu = time.process_time()
            result.first_step_s = _timed(runner.train)
            result.first_step_cpu_s = time.process_time() - cpu
            if device == "Ascend":
                result.first_step_s -= _timed(runner.train) * (sink_steps - 1) / sink_steps
            runner.infer()  # compile the inference graphs outside the timed rounds
            runner.latency()
            result.peak_rss_mb = peak_rss_mb() - base
        except Exception as err:  # one framework failing must not hide the others' figures
            result.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            results[fw] = result
            continue
        runners[fw] = runner
        results[fw] = result

    per_step = sink_steps if device == "Ascend" else 1
    for _ in range(repeats):
        for fw, runner in runners.items():
            r = results[fw]
            r.train_step_ms.append(_timed(runner.train) * 1e3 / per_step)
            r.infer_ms.append(_timed(runner.infer) * 1e3)
            r.latency_samples_ms.extend(_timed(runner.latency) * 1e3 for _ in range(latency_calls))
    for fw in runners:
        r = results[fw]
        r.train_img_s = batch / (np.median(r.train_step_ms) / 1e3)
        r.infer_img_s = batch / (np.median(r.infer_ms) / 1e3)
        r.latency_ms = float(np.median(r.latency_samples_ms))
    runners.clear()
    gc.collect()
    return [results[fw] for fw in frameworks if fw in results]


FIRST_STEP_TAG = "FIRST_STEP "


def first_step_alone(name: str, framework: str, batch: int, size: int, device: str, sink_steps: int) -> None:
    """The child process of ``first_step_in_new_process``: build, time one training step, print it."""
    builder = {OURS: build_ours, NATIVE: build_ours_native, MINDCV: build_mindcv}[framework]
    runner = builder(name, batch, size, device, sink_steps)
    cpu = time.process_time()
    wall = _timed(runner.train)
    print(FIRST_STEP_TAG + json.dumps({"wall": wall, "cpu": time.process_time() - cpu}), flush=True)


def first_step_in_new_process(result: Result, args: argparse.Namespace) -> None:
    """Time a MindSpore framework's first training step (graph compilation plus one step) in a new
    process, as a user's first step is: in the benchmark's own process, the first model built also pays
    for MindSpore's one-time start-up and the later ones reuse compiled pieces."""
    command = [sys.executable, str(Path(__file__).resolve()), "--first-step-of", result.framework,
               "--models", result.model, "--batch", str(args.batch), "--image-size", str(args.image_size),
               "--device", args.device, "--sink-steps", str(args.sink_steps)]
    child = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in child.stdout.splitlines() if line.startswith(FIRST_STEP_TAG)]
    if child.returncode != 0 or not lines:
        result.error = result.error or f"first step in a new process failed: {child.stderr.strip()[-300:]}"
        return
    measured = json.loads(lines[-1][len(FIRST_STEP_TAG):])
    result.new_process_first_step_s, result.new_process_first_step_cpu_s = measured["wall"], measured["cpu"]


def ratios(results: Sequence[Result]) -> Dict[str, Dict[str, float]]:
    """Per model and other framework: ours / theirs for throughputs (>1: ours faster) and
    theirs / ours for batch-1 latency (>1: ours faster)."""
    out: Dict[str, Dict[str, float]] = {}
    by_model: Dict[str, Dict[str, Result]] = {}
    for r in results:
        by_model.setdefault(r.model, {})[r.framework] = r
    for model, fws in by_model.items():
        ours = fws.get(OURS)
        if ours is None or ours.error:
            continue
        for fw, other in fws.items():
            if fw == OURS or other.error:
                continue
            out.setdefault(model, {})[fw] = {
                "train": ours.train_img_s / other.train_img_s,
                "infer": ours.infer_img_s / other.infer_img_s,
                "latency": other.latency_ms / ours.latency_ms,
            }
    return out


# --- reporting ---------------------------------------------------------------------------------------
def machine_info(device: str) -> Dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: Dict[str, object] = {
        "device": device, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "mindspore": ms.__version__, "numpy": np.__version__,
        "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "",
    }
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    for module in ("torch", "torchvision", "mindcv"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def markdown(results: Sequence[Result], info: Dict[str, object], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['device']}; Python {info['python']}, "
             f"MindSpore {info['mindspore']}, PyTorch {info.get('torch') or '-'}, torchvision "
             f"{info.get('torchvision') or '-'}, MindCV {info.get('mindcv') or '-'}. Medians of "
             f"{info['repeats']} round-robin rounds; batch {info['batch']}, {info['image_size']}x"
             f"{info['image_size']}, float32.", "",
             "| model | framework | train img/s | infer img/s | batch-1 latency (ms) | first step, new process (s) | "
             "its CPU time (s) | first step in this process (s) | peak RSS growth (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.framework} | failed: {r.error} | | | | | | |")
            continue
        lines.append(f"| {r.model} | {r.framework} | {_fmt(r.train_img_s)} | {_fmt(r.infer_img_s)} | "
                     f"{_fmt(r.latency_ms, 2)} | {_fmt(r.new_process_first_step_s)} | "
                     f"{_fmt(r.new_process_first_step_cpu_s)} | {_fmt(r.first_step_s)} | {_fmt(r.peak_rss_mb, 0)} |")
    table = ratios(results)
    if table:
        lines += ["", "Ratios, this project / other (throughput: ours / theirs; latency: theirs / ours; "
                  "above 1 means this project is faster):", "",
                  "| model | vs | train | inference | batch-1 latency |", "|---|---|---|---|---|"]
        for model, others in table.items():
            for fw, rat in others.items():
                lines.append(f"| {model} | {fw} | {rat['train']:.2f}x | {rat['infer']:.2f}x | {rat['latency']:.2f}x |")
    return "\n".join(lines) + "\n"


def chart(results: Sequence[Result], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in results))
    fws = [fw for fw in FRAMEWORKS if any(r.framework == fw and not r.error for r in results)]
    metrics = [("train_img_s", "training img/s"), ("infer_img_s", "inference img/s (batch 32)"),
               ("latency_ms", "batch-1 latency (ms, lower is better)")]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 0.6 * len(models) * len(fws) + 2), 9),
                             squeeze=False)
    width = 0.8 / max(1, len(fws))
    for ax, (key, label) in zip(axes[:, 0], metrics):
        for i, fw in enumerate(fws):
            vals = [next((getattr(r, key) for r in results if r.model == m and r.framework == fw and not r.error),
                         np.nan) for m in models]
            ax.bar(np.arange(len(models)) + i * width, vals, width, label=fw)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xticks(np.arange(len(models)) + width * (len(fws) - 1) / 2)
        ax.set_xticklabels(models, rotation=45, ha="right", fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def select_models(spec: str) -> List[str]:
    """``all`` or comma-separated names / shell patterns, in the registry's order."""
    names = list_models()
    if spec.strip().lower() == "all":
        return names
    chosen: List[str] = []
    for part in (p.strip() for p in spec.replace(" ", ",").split(",")):
        if not part:
            continue
        hits = [n for n in names if fnmatch.fnmatchcase(n, part)]
        if not hits:
            raise ValueError(f"no model matches {part!r}: see the names in list_models()")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shufflenet_v2_x1_0", help="'all' or comma-separated names/patterns")
    parser.add_argument("--device", default="CPU", choices=["CPU", "Ascend"])
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="which to measure, of ours,torchvision,mindcv (missing packages are skipped)")
    parser.add_argument("--repeats", type=int, default=5, help="round-robin rounds per model")
    parser.add_argument("--latency-calls", type=int, default=3, help="batch-1 calls per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--sink-steps", type=int, default=20, help="Ascend: steps per sunk call")
    parser.add_argument("--out-dir", default="benchmarks/cpu")
    parser.add_argument("--no-new-process-first-step", action="store_true",
                        help="skip timing each MindSpore model's first step again in a fresh process")
    parser.add_argument("--first-step-of", choices=[OURS, NATIVE, MINDCV], help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1 or args.latency_calls < 1 or args.batch < 1:
        raise ValueError("--repeats, --latency-calls and --batch must be at least 1")
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        raise ValueError(f"unknown framework {unknown[0]!r}: choose from {', '.join(FRAMEWORKS)}")
    frameworks = [f for f in FRAMEWORKS if f in frameworks]  # ours first: the base of the ratios
    models = select_models(args.models)

    if args.device == "Ascend":
        runtime.init_runtime(device="Ascend", mode="graph", jit_level="O0", seed=0)
    else:
        runtime.init_runtime(device="CPU", mode="graph", seed=0)
    if args.first_step_of:
        first_step_alone(models[0], args.first_step_of, args.batch, args.image_size, args.device, args.sink_steps)
        return 0
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    info = machine_info(args.device)
    info.update(repeats=args.repeats, batch=args.batch, image_size=args.image_size, command=command)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    results: List[Result] = []
    for name in models:
        print(f"{name} ...", flush=True)
        for r in benchmark_model(name, frameworks, args.batch, args.image_size, args.repeats,
                                 args.latency_calls, args.device, args.sink_steps):
            if r.framework != TORCH and not r.error and not args.no_new_process_first_step:
                first_step_in_new_process(r, args)
            results.append(r)
            if r.error:
                print(f"  {r.framework:12s} failed: {r.error}", flush=True)
            else:
                print(f"  {r.framework:12s} train {r.train_img_s:8.1f} img/s  infer {r.infer_img_s:8.1f} img/s  "
                      f"latency {r.latency_ms:7.2f} ms  first step {r.first_step_s:5.1f} s "
                      f"(new process {r.new_process_first_step_s:5.1f} s)  "
                      f"peak RSS +{r.peak_rss_mb:.0f} MB", flush=True)
        # written after every model, so that a long run interrupted keeps what it measured
        try:
            info["load_average_at_end"] = os.getloadavg()
        except OSError:
            pass
        (out / "benchmark.json").write_text(json.dumps(
            {"machine": info, "results": [asdict(r) for r in results], "ratios": ratios(results)}, indent=1))
        (out / "benchmark.md").write_text(markdown(results, info, command))
    chart(results, out / "benchmark.png", f"{info['cpu']}, {info['cores']} cores, {args.device}: batch "
          f"{args.batch}, {args.image_size}x{args.image_size}, medians of {args.repeats} rounds")
    print()
    print(markdown(results, info, command))
    print(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
