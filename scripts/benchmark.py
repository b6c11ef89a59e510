"""Speed of this project's models beside torchvision (PyTorch), MindCV and onnxruntime, each in its own process.

    python scripts/benchmark.py --models all --device CPU [--repeats 3] [--threads 2] [--out-dir benchmarks/cpu]
    python scripts/benchmark.py --models shufflenet_v2_x1_0,shufflenet_v1_g3_10 --repeats 5
    python scripts/benchmark.py --models 'shufflenet_v2_*' --device Ascend      # sink mode, amp O3

Method: every (model, framework) measurement runs in a fresh process (this script with a hidden ``--child``),
so no framework's threads compete with another's, and the processes alternate: per model, round 1 runs each
framework once, back to back, then round 2, ... (``--repeats``, at least 3 for figures to quote). Every process
gets the same ``--threads`` (MindSpore's CPU op threads and ``OMP_NUM_THREADS``; PyTorch
``set_num_threads``; onnxruntime intra-op threads; one inter-op thread for both). Figures are medians over the
rounds; a ratio is taken within each round, between processes run back to back, and its median is reported.

A process builds the model, times its first training step (graph compilation plus one SGD-momentum step,
as a user's run starts; wall and CPU time), ``--steps`` more steps, ``--steps`` inference batches of
``--batch`` and ``--latency-calls`` batch-1 calls (medians), and its peak RSS growth. Frameworks: ``ours``
(this project's network, CPU fast kernels), ``ours-native`` (MindSpore's own kernels), ``torchvision`` and
``mindcv`` (when installed), ``onnxruntime`` (the network exported to float32 ONNX by
``deploy.export_model``, BatchNorm folded) and ``onnxruntime-int8`` (that file quantized to INT8 QDQ by
``quantize.quantize_onnx``, calibrated on a few random images: calibration changes accuracy, not speed);
the ONNX files are written once per model, in a process of their own, and only run inference.

Writes ``benchmark.md`` (tables), ``benchmark.json`` (every process's figures, its pid, the machine) and
``benchmark.png`` (a chart) into ``--out-dir``, after every model.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# The environment as the user started the benchmark: each child gets it (plus OMP_NUM_THREADS), not the CPU
# defaults that importing mindcv_shufflenet adds here (a oneDNN ISA cap); the MindSpore children import the
# package and so set those for themselves, as train.py would.
USER_ENV = dict(os.environ)

OURS, NATIVE, TORCH, MINDCV = "ours", "ours-native", "torchvision", "mindcv"
ORT, ORT_INT8 = "onnxruntime", "onnxruntime-int8"
FRAMEWORKS = (OURS, NATIVE, TORCH, MINDCV, ORT, ORT_INT8)
MINDSPORE_FRAMEWORKS = (OURS, NATIVE, MINDCV)
CPU_ONLY = (TORCH, ORT, ORT_INT8)
PACKAGES = {OURS: ("mindspore",), NATIVE: ("mindspore",), TORCH: ("torch", "torchvision"), MINDCV: ("mindcv",),
            ORT: ("onnxruntime",), ORT_INT8: ("onnxruntime", "onnx")}
FIGURES = ("train_img_s", "infer_img_s", "latency_ms", "first_step_s", "first_step_cpu_s", "peak_rss_mb")
CHILD_TAG = "BENCHMARK_CHILD "  # the child's one line of results: this tag, then JSON
CHILD_TIMEOUT_S = 1800
CALIBRATION_IMAGES = 8
NAN = float("nan")


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


# --- one framework's model, ready to time (in a child process) ---------------------------------------
@dataclass
class Runner:
    """Closures that run one training step (None: inference only), one batch of inference and one batch-1
    inference, each returning only when the result is computed."""

    train: Optional[Callable[[], None]]
    infer: Callable[[], None]
    latency: Callable[[], None]
    # Run once between training and inference: what the framework's own evaluation does to a trained
    # network first (this project's validate.py / infer.py fold BatchNorm into the convolutions).
    prepare_inference: Optional[Callable[[], int]] = None  # returns how many BatchNorms it folded


class Skipped(Exception):
    """This framework has no version of this model here (the row is left out, with the reason printed)."""


def _training_loss(net):
    """Cross-entropy; for a network that returns auxiliary logits in training, their weighted losses added,
    as its recipe trains it."""
    from mindspore import nn

    from mindcv_shufflenet.engine.loss import AuxiliaryLoss
    from mindcv_shufflenet.models.shufflenet_v2_large import AUX_LOSS_WEIGHTS  # (main, head 3, head 2, head 1)

    heads = getattr(net, "aux_heads", None)
    if heads is None:
        return nn.CrossEntropyLoss()
    return AuxiliaryLoss(nn.CrossEntropyLoss(), AUX_LOSS_WEIGHTS[1:1 + len(heads)])


def _ms_runner(net, batch: int, size: int, device: str, sink_steps: int, fold_bn: bool = False) -> Runner:
    from mindspore import Tensor, nn

    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 3, size, size), dtype=np.float32))
    y = Tensor(rng.integers(0, 1000, batch).astype(np.int32))
    x1 = Tensor(rng.random((1, 3, size, size), dtype=np.float32))
    if device == "Ascend":
        train = _ascend_sink_train(net, x, y, sink_steps)
    else:
        step = nn.TrainOneStepCell(nn.WithLossCell(net, _training_loss(net)),
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

    def prepare_inference() -> int:
        from mindcv_shufflenet.models import prepare_for_inference

        return prepare_for_inference(net)

    return Runner(train, infer, latency, prepare_inference if fold_bn else None)


class _SameBatch:
    """``length`` copies of one (x, y) batch, random access, for a sunk benchmark dataset."""

    def __init__(self, x: np.ndarray, y: np.ndarray, length: int) -> None:
        self.x, self.y, self.length = x, y, length

    def __getitem__(self, index: int):
        return self.x, self.y

    def __len__(self) -> int:
        return self.length


def _ascend_sink_train(net, x, y, sink_steps: int) -> Callable[[], None]:
    """Ascend: MindCV's setting, amp O3 with a fixed loss scale of 1024, the steps sunk to the device
    ``sink_steps`` at a time (``ms.data_sink``). One call runs ``sink_steps`` steps; the caller divides.
    Not run here (no NPU on the machine this was written on)."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore import Tensor, nn

    net = ms.amp.auto_mixed_precision(net, "O3")
    loss = _training_loss(net)
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


def build_mindspore(framework: str, name: str, args: argparse.Namespace) -> Runner:
    """ours, ours-native (this project's network on MindSpore's own kernels) or MindCV's model."""
    from mindcv_shufflenet import create_model, kernels

    if framework == OURS:
        net = create_model(name)
    elif framework == NATIVE:
        if not kernels.enabled():
            raise Skipped("the CPU fast kernels are off here, so ours already runs MindSpore's kernels")
        with kernels.native_kernels():
            net = create_model(name)
    else:
        import mindcv

        if name not in mindcv.list_models():
            raise Skipped(f"MindCV {mindcv.__version__} has no {name}")
        net = mindcv.create_model(name)
    fold_bn = framework in (OURS, NATIVE) and not args.no_fold_bn  # as validate.py / infer.py run it
    return _ms_runner(net, args.batch, args.image_size, args.device, args.sink_steps, fold_bn)


def build_torchvision(name: str, batch: int, size: int) -> Runner:
    import torch
    import torchvision

    builder = getattr(torchvision.models, name, None)
    if builder is None:
        raise Skipped(f"torchvision {torchvision.__version__} has no {name}")
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


def build_onnxruntime(onnx_file: str, batch: int, size: int, threads: int) -> Runner:
    """An onnxruntime CPU session on ``onnx_file``: ``threads`` intra-op threads, one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    x = rng.random((batch, 3, size, size), dtype=np.float32)
    x1 = rng.random((1, 3, size, size), dtype=np.float32)
    return Runner(None, lambda: session.run(None, {name: x}), lambda: session.run(None, {name: x1}))


def set_up_framework(framework: str, args: argparse.Namespace) -> int:
    """Import ``framework`` and give it ``args.threads`` threads, before any model is built; returns the
    thread count the framework reports (onnxruntime's is set per session, in :func:`build_onnxruntime`)."""
    if framework in MINDSPORE_FRAMEWORKS:
        from mindcv_shufflenet import runtime  # its import sets the CPU defaults (oneDNN ISA cap)

        jit_level = "O0" if args.device == "Ascend" else None
        runtime.init_runtime(device=args.device, mode="graph", jit_level=jit_level, num_threads=args.threads, seed=0)
        if framework == MINDCV:
            import mindcv  # noqa: F401
        return runtime.cpu_threads()
    if framework == TORCH:
        import torch
        import torchvision  # noqa: F401

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        return torch.get_num_threads()
    import onnxruntime  # noqa: F401

    return args.threads


def build(framework: str, name: str, args: argparse.Namespace) -> Runner:
    if framework in MINDSPORE_FRAMEWORKS:
        return build_mindspore(framework, name, args)
    if framework == TORCH:
        return build_torchvision(name, args.batch, args.image_size)
    return build_onnxruntime(args.onnx_file, args.batch, args.image_size, args.threads)


# --- measuring (in a child process) ------------------------------------------------------------------
def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median(values: Sequence[float]) -> float:
    """The median of the finite values; NaN when there is none."""
    finite = [v for v in values if v == v]
    return float(np.median(finite)) if finite else NAN


def measure(framework: str, name: str, args: argparse.Namespace) -> Dict[str, object]:
    """Build ``name`` in ``framework``, time its first training step, ``args.steps`` more, as many inference
    batches and ``args.latency_calls`` batch-1 calls; medians and the peak RSS growth."""
    gc.collect()
    base = rss_mb()
    reset_peak_rss()
    runner = build(framework, name, args)
    out: Dict[str, object] = {}
    if runner.train is not None:
        per_step = args.sink_steps if args.device == "Ascend" else 1  # one Ascend call sinks that many steps
        cpu = time.process_time()
        first = _timed(runner.train)
        out["first_step_cpu_s"] = time.process_time() - cpu
        steps = [_timed(runner.train) for _ in range(args.steps)]
        out["first_step_s"] = first - _median(steps) * (per_step - 1) / per_step
        out["train_step_ms"] = [s * 1e3 / per_step for s in steps]
        out["train_img_s"] = args.batch / (_median(out["train_step_ms"]) / 1e3)
    if runner.prepare_inference is not None:
        out["batchnorm_folded"] = runner.prepare_inference()
    runner.infer()  # compiled and warmed outside the timed calls
    runner.latency()
    out["infer_ms"] = [_timed(runner.infer) * 1e3 for _ in range(args.steps)]
    out["latency_samples_ms"] = [_timed(runner.latency) * 1e3 for _ in range(args.latency_calls)]
    out["infer_img_s"] = args.batch / (_median(out["infer_ms"]) / 1e3)
    out["latency_ms"] = _median(out["latency_samples_ms"])
    out["peak_rss_mb"] = peak_rss_mb() - base
    return out


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def export_onnx(name: str, folder: Path, frameworks: Sequence[str], image_size: int) -> Dict[str, Dict[str, str]]:
    """This project's ``name`` (random weights) as float32 ONNX (``deploy.export_model``: BatchNorm folded,
    dynamic batch) and, when onnxruntime-int8 is asked for, its INT8 QDQ copy (``quantize.quantize_onnx``,
    default settings) calibrated on a few random images: calibration changes the accuracy, not the speed."""
    from mindcv_shufflenet import create_model, runtime
    from mindcv_shufflenet.deploy import export_model

    files: Dict[str, str] = {}
    errors: Dict[str, str] = {}
    runtime.init_runtime(device="CPU", mode="graph", seed=0)
    try:
        float_file = export_model(create_model(name), folder / f"{name}.onnx", "ONNX", image_size, check=False).path
        files[ORT] = str(float_file)
    except Exception as err:  # both ONNX frameworks' rows say why
        return {"files": files, "errors": {ORT: _one_line(err), ORT_INT8: _one_line(err)}}
    if ORT_INT8 in frameworks:
        try:
            from mindcv_shufflenet.deploy.quantize import quantize_onnx

            shape = (CALIBRATION_IMAGES, 3, image_size, image_size)
            images = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            files[ORT_INT8] = str(quantize_onnx(float_file, folder / f"{name}-int8.onnx", images))
        except Exception as err:
            errors[ORT_INT8] = _one_line(err)
    return {"files": files, "errors": errors}


def child_main() -> int:
    """A child process: one framework's measurement of one model (``--child``), or the ONNX files of one
    model (``--export-onnx``); prints one line, CHILD_TAG and JSON. Errors go into that line."""
    args = parse_args()
    out: Dict[str, object] = {"pid": os.getpid(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    try:
        if args.export_onnx:
            out.update(export_onnx(args.models, Path(args.export_onnx), args.frameworks.split(","), args.image_size))
        else:
            out["threads"] = set_up_framework(args.child, args)
            out.update(measure(args.child, args.models, args))
    except Skipped as why:
        out["skipped"] = str(why)
    except Exception as err:  # the parent shows it in the framework's row
        out["error"] = _one_line(err)
    print(CHILD_TAG + json.dumps(out), flush=True)
    gc.collect()  # MindSpore's Cells freed now, not at interpreter exit (where they print tracebacks)
    return 0


# --- the parent: rounds of child processes -----------------------------------------------------------
@dataclass
class Result:
    """One framework's figures for one model: medians over its rounds (``rounds``: each child's figures,
    with its round number and pid)."""

    model: str
    framework: str
    train_img_s: float = NAN
    infer_img_s: float = NAN
    latency_ms: float = NAN
    first_step_s: float = NAN
    first_step_cpu_s: float = NAN
    peak_rss_mb: float = NAN
    rounds: List[Dict[str, object]] = field(default_factory=list)
    error: str = ""


def run_child(command: List[str], threads: int) -> Dict[str, object]:
    """Run this script's child ``command`` with OMP_NUM_THREADS=``threads``; its JSON line, or {"error": ...}."""
    env = dict(USER_ENV, OMP_NUM_THREADS=str(threads))
    try:
        child = subprocess.run(command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = [line for line in child.stdout.splitlines() if line.startswith(CHILD_TAG)]
    if not lines:
        last = [line.strip() for line in child.stderr.splitlines() if line.strip()][-1:] or ["no output"]
        return {"error": f"the process exited with status {child.returncode}: {last[0][:300]}"}
    return json.loads(lines[-1][len(CHILD_TAG):])


def _child_command(args: argparse.Namespace, model: str) -> List[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--models", model, "--batch", str(args.batch),
            "--image-size", str(args.image_size), "--device", args.device, "--sink-steps", str(args.sink_steps),
            "--threads", str(args.threads), "--steps", str(args.steps), "--latency-calls", str(args.latency_calls),
            "--frameworks", ",".join(args.framework_list)] + (["--no-fold-bn"] if args.no_fold_bn else [])


def onnx_files(model: str, args: argparse.Namespace, folder: Path) -> Dict[str, Dict[str, str]]:
    """The ONNX files of ``model`` for the onnxruntime frameworks asked for, written by a child process."""
    if not any(fw in args.framework_list for fw in (ORT, ORT_INT8)):
        return {"files": {}, "errors": {}}
    out = run_child(_child_command(args, model) + ["--export-onnx", str(folder)], args.threads)
    if "error" in out:
        return {"files": {}, "errors": {ORT: out["error"], ORT_INT8: out["error"]}}
    return out


def _progress(round_index: int, args: argparse.Namespace, framework: str, run: Dict[str, object]) -> str:
    head = f"  round {round_index + 1}/{args.repeats} {framework:17s}"
    if "error" in run or "skipped" in run:
        return f"{head} {'failed' if 'error' in run else 'skipped'}: {run.get('error') or run.get('skipped')}"
    return (f"{head} train {_fmt(run.get('train_img_s', NAN)):>7s} img/s  infer {_fmt(run['infer_img_s']):>7s} img/s  "
            f"latency {_fmt(run['latency_ms'], 2):>7s} ms  first step {_fmt(run.get('first_step_s', NAN)):>5s} s  "
            f"peak RSS +{run['peak_rss_mb']:.0f} MB  (pid {run['pid']})")


def benchmark_model(name: str, args: argparse.Namespace, folder: Path) -> Tuple[List[Result], List[str]]:
    """``args.repeats`` rounds, each running every framework once in a process of its own; the results
    (medians over the rounds) and the frameworks skipped (``"framework: why"``)."""
    exported = onnx_files(name, args, folder)
    results = {fw: Result(name, fw) for fw in args.framework_list}
    skipped: List[str] = []
    for fw, why in exported["errors"].items():
        if fw in results:
            results[fw].error = f"ONNX file: {why}"
    for round_index in range(args.repeats):
        for fw in [fw for fw, r in results.items() if not r.error]:
            command = _child_command(args, name) + ["--child", fw]
            if fw in (ORT, ORT_INT8):
                command += ["--onnx-file", exported["files"][fw]]
            run = run_child(command, args.threads)
            print(_progress(round_index, args, fw, run), flush=True)
            if "skipped" in run:
                skipped.append(f"{fw}: {run['skipped']}")
                del results[fw]
            elif "error" in run:
                results[fw].error = str(run["error"])
            else:
                results[fw].rounds.append(dict(run, round=round_index))
    for r in results.values():
        for key in FIGURES:
            setattr(r, key, _median([run.get(key, NAN) for run in r.rounds]))
    return list(results.values()), skipped


def ratios(results: Sequence[Result]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per model and other framework, the median over rounds of the ratio within each round (between
    processes run back to back): ours / theirs for throughputs, theirs / ours for batch-1 latency
    (above 1: ours faster). NaN where a figure is missing (onnxruntime does not train)."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    by_model: Dict[str, Dict[str, Result]] = {}
    for r in results:
        by_model.setdefault(r.model, {})[r.framework] = r
    for model, fws in by_model.items():
        ours = fws.get(OURS)
        if ours is None or ours.error:
            continue
        ours_rounds = {run["round"]: run for run in ours.rounds}
        for fw, other in fws.items():
            pairs = [(ours_rounds[run["round"]], run) for run in other.rounds if run["round"] in ours_rounds]
            if fw == OURS or other.error or not pairs:
                continue
            out.setdefault(model, {})[fw] = {
                "train": _median([a.get("train_img_s", NAN) / b.get("train_img_s", NAN) for a, b in pairs]),
                "infer": _median([a["infer_img_s"] / b["infer_img_s"] for a, b in pairs]),
                "latency": _median([b["latency_ms"] / a["latency_ms"] for a, b in pairs]),
            }
    return out


# --- reporting ---------------------------------------------------------------------------------------
def _version(package: str) -> Optional[str]:
    """An installed package's version, without importing it (the parent stays free of their threads)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_average() -> Optional[Tuple[float, float, float]]:
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info(args: argparse.Namespace, command: str) -> Dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: Dict[str, object] = {
        "device": args.device, "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "threads": args.threads, "repeats": args.repeats, "steps": args.steps,
        "latency_calls": args.latency_calls, "batch": args.batch, "image_size": args.image_size,
        "frameworks": args.framework_list, "command": command, "load_average_at_start": _load_average(),
        "fold_bn": not args.no_fold_bn,
        # as the MindSpore processes have it (mindcv_shufflenet's default unless the user set one)
        "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "",
    }
    for package in ("mindspore", "torch", "torchvision", "mindcv", "onnxruntime", "onnx"):
        info[package] = _version(package)
    return info


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "es" if thing.endswith("ch") else "s")


def _loads(value: Optional[Sequence[float]]) -> str:
    return ", ".join(f"{v:.2f}" for v in value) if value else "-"


def _ratio(value: float) -> str:
    return "-" if value != value else f"{value:.2f}x"


def _header(info: Dict[str, object], skipped: Sequence[str]) -> List[str]:
    """The command, the machine, the method (processes, rounds, threads) and the load averages."""
    lines = [f"Command: `{info['command']}`", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['device']}; Python {info['python']}, MindSpore "
             f"{info['mindspore']}, PyTorch {info['torch'] or '-'}, torchvision {info['torchvision'] or '-'}, MindCV "
             f"{info['mindcv'] or '-'}, onnxruntime {info['onnxruntime'] or '-'}; batch {info['batch']}, "
             f"{info['image_size']}x{info['image_size']}, float32.", "",
             f"The frameworks ran in separate processes, alternating ({', '.join(info['frameworks'])}), "
             f"{_count(info['repeats'], 'round')}, {_count(info['threads'], 'thread')} each; medians over the "
             f"rounds (within a process: {_count(info['steps'], 'training step')}, "
             f"{_count(info['steps'], 'inference batch')}, {_count(info['latency_calls'], 'batch-1 call')}). "
             f"This project's inference (ours, ours-native): "
             + ("BatchNorm folded into the convolutions, as validate.py and infer.py run it." if info["fold_bn"]
                else "BatchNorm not folded (--no-fold-bn)."), "",
             f"Load average (1, 5, 15 min) at start: {_loads(info['load_average_at_start'])}; at end: "
             f"{_loads(info.get('load_average_at_end'))}.", ""]
    return lines + ([f"Skipped: {'; '.join(skipped)}.", ""] if skipped else [])


def markdown(results: Sequence[Result], info: Dict[str, object], skipped: Sequence[str]) -> str:
    lines = _header(info, skipped) + [
        "| model | framework | train img/s | infer img/s | batch-1 latency (ms) | first step in a new process (s) "
        "| its CPU time (s) | peak RSS growth (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.model} | {r.framework} | failed: {r.error} | | | | | |")
            continue
        lines.append(f"| {r.model} | {r.framework} | {_fmt(r.train_img_s)} | {_fmt(r.infer_img_s)} | "
                     f"{_fmt(r.latency_ms, 2)} | {_fmt(r.first_step_s)} | {_fmt(r.first_step_cpu_s)} | "
                     f"{_fmt(r.peak_rss_mb, 0)} |")
    table = ratios(results)
    if table:
        lines += ["", "Ratios, this project / other, the median over rounds of each round's ratio (throughput: "
                  "ours / theirs; latency: theirs / ours; above 1 means this project is faster):", "",
                  "| model | vs | train | inference | batch-1 latency |", "|---|---|---|---|---|"]
        for model, others in table.items():
            for fw, rat in others.items():
                lines.append(f"| {model} | {fw} | {_ratio(rat['train'])} | {_ratio(rat['infer'])} | "
                             f"{_ratio(rat['latency'])} |")
    return "\n".join(lines) + "\n"


def chart(results: Sequence[Result], path: Path, title: str, batch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in results))
    fws = [fw for fw in FRAMEWORKS if any(r.framework == fw and not r.error for r in results)]
    metrics = [("train_img_s", "training img/s"), ("infer_img_s", f"inference img/s (batch {batch})"),
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


# --- command line ------------------------------------------------------------------------------------
def select_models(spec: str) -> List[str]:
    """``all`` or comma-separated names / shell patterns, in the registry's order."""
    from mindcv_shufflenet import list_models

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


def _missing_package(framework: str) -> Optional[str]:
    return next((p for p in PACKAGES[framework] if importlib.util.find_spec(p) is None), None)


def select_frameworks(spec: str, device: str) -> Tuple[List[str], List[str]]:
    """The frameworks to run, in FRAMEWORKS' order (ours first: the base of the ratios), and those skipped.

    ``all``: every framework this Python can run (the others skipped, with why). Named frameworks must be
    known and installed (a one-line ValueError otherwise).
    """
    every = spec.strip().lower() == "all"
    names = list(FRAMEWORKS) if every else [f.strip() for f in spec.split(",") if f.strip()]
    unknown = [f for f in names if f not in FRAMEWORKS]
    if unknown or not names:
        raise ValueError(f"unknown framework {unknown[0] if unknown else spec!r}: choose from "
                         f"{', '.join(FRAMEWORKS)}, comma-separated, or all")
    chosen, skipped = [f for f in FRAMEWORKS if f in names], []
    for fw in list(chosen):
        why = _missing_package(fw)
        if why and not every:
            raise ValueError(f"{fw} needs the {why} package, which this Python ({sys.executable}) does not have: "
                             f"install it (see docs/speed.md) or leave {fw} out of --frameworks")
        if why or (device != "CPU" and fw in CPU_ONLY):
            chosen.remove(fw)
            skipped.append(f"{fw}: " + (f"{why} is not installed" if why else "compared on --device CPU only"))
    return chosen, skipped


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="shufflenet_v2_x1_0", help="'all' or comma-separated names/patterns")
    parser.add_argument("--device", default="CPU", choices=["CPU", "Ascend"])
    parser.add_argument("--frameworks", default="all",
                        help=f"all (those installed) or comma-separated, of {','.join(FRAMEWORKS)}")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of processes per model (3 or more to quote)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps and inference batches per process")
    parser.add_argument("--latency-calls", type=int, default=10, help="timed batch-1 calls per process")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of every framework")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--sink-steps", type=int, default=20, help="Ascend: steps per sunk call")
    parser.add_argument("--no-fold-bn", action="store_true",
                        help="time this project's inference without BatchNorm folded (validate.py --no_fold_bn)")
    parser.add_argument("--out-dir", default="benchmarks/cpu")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--onnx-file", help=argparse.SUPPRESS)
    parser.add_argument("--export-onnx", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true")
    return parser.parse_args(argv)


def write_results(out: Path, results: List[Result], skipped: List[str], info: Dict[str, object]) -> None:
    info["load_average_at_end"] = _load_average()
    (out / "benchmark.json").write_text(json.dumps({"machine": info, "results": [asdict(r) for r in results],
                                                    "ratios": ratios(results), "skipped": skipped}, indent=1))
    (out / "benchmark.md").write_text(markdown(results, info, skipped))
    chart(results, out / "benchmark.png", f"{info['cpu']}, {info['cores']} cores, {info['device']}, "
          f"{info['threads']} threads: batch {info['batch']}, {info['image_size']}x{info['image_size']}, medians of "
          f"{info['repeats']} rounds", info["batch"])


def main() -> int:
    args = parse_args()
    for option in ("repeats", "steps", "latency_calls", "batch", "threads"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    args.framework_list, skipped = select_frameworks(args.frameworks, args.device)
    models = select_models(args.models)
    from mindcv_shufflenet import runtime

    runtime.check_device_available(args.device)  # one line here, not a failed row per process
    if args.repeats < 3:
        print(f"note: --repeats {args.repeats}: figures to quote need at least 3 rounds", flush=True)
    info = machine_info(args, "python scripts/benchmark.py " + " ".join(sys.argv[1:]))
    print(f"{', '.join(args.framework_list)}: in separate processes, alternating, {_count(args.repeats, 'round')}, "
          f"{_count(args.threads, 'thread')} each; load average {_loads(info['load_average_at_start'])}", flush=True)
    if skipped:
        print(f"skipped: {'; '.join(skipped)}", flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: List[Result] = []
    with tempfile.TemporaryDirectory(prefix="benchmark-onnx-") as folder:
        for name in models:
            print(f"{name} ...", flush=True)
            model_results, model_skipped = benchmark_model(name, args, Path(folder))
            results += model_results
            skipped += [f"{name} {why}" for why in model_skipped]
            write_results(out, results, skipped, info)  # after every model: an interrupted run keeps them
    print()
    print(markdown(results, info, skipped))
    print(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv or "--export-onnx" in sys.argv:
        sys.exit(child_main())  # no MindSpore import in the torchvision and onnxruntime processes
    from mindcv_shufflenet import runtime

    runtime.run_cli(main, debug="--debug" in sys.argv)
