"""Deployment measurements: INT8 vs float32 accuracy on held-out images, and INT8 vs float ONNX speed.

    # accuracy: float32 checkpoint, float ONNX and INT8 ONNX (each calibration method, several calibration
    # draws) evaluated on the same images with validate.py's pipeline
    python scripts/deploy_benchmark.py accuracy --config configs/demo/shufflenet_v2_digits_cpu.yaml \\
        --ckpt_path output/digits_demo/shufflenet_v2_x0_5-best.ckpt --data_dir data/digits
    # speed: float vs INT8 ONNX in onnxruntime, batch 1 and 32, each configuration in its own process,
    # alternating, medians of --rounds rounds, the same thread count for all; with PyTorch installed (a
    # separate environment, see docs/speed.md) also torchvision's float and eager INT8 (fbgemm) models
    python scripts/deploy_benchmark.py speed --model shufflenet_v2_x1_0 --threads 2 --rounds 5

Both print a Markdown table and write JSON next to it (--out). Random weights are enough for speed.

The accuracy command preprocesses as validate.py does: each of image_resize, crop_pct, interpolation, mean
and std from its option, else --config (the keys its YAML sets), else what the checkpoint records it was
trained with, else the model's metadata; the channel order from the checkpoint's record, else the model's
(a BGR 0-255 model is evaluated, exported and calibrated on BGR 0-255 input).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy", help="float32 vs INT8 top-1 per calibration method")
    acc.add_argument("--config", default=None, help="the training recipe: the model and the preprocessing keys "
                     "its YAML sets")
    acc.add_argument("--model", default=None, help="default: the recipe's, else the one the checkpoint names")
    acc.add_argument("--ckpt_path", required=True)
    acc.add_argument("--data_dir", required=True, help="ImageNet-style folder: calibration from train, test on val")
    acc.add_argument("--calib_split", default="train")
    acc.add_argument("--val_split", default="val")
    acc.add_argument("--calib_images", type=int, default=300)
    acc.add_argument("--methods", default="minmax,entropy,percentile")
    acc.add_argument("--seeds", type=int, default=3, help="calibration draws per method")
    acc.add_argument("--variant", default="qdq", help="INT8 settings, one of the speed variants (default: the "
                     "export's); qdq-int8-logits quantizes the logits too")
    acc.add_argument("--image_resize", type=int, default=None, help="default: --config's, else recorded, else "
                     "the model's")
    acc.add_argument("--crop_pct", type=float, default=None, help="default: --config's, else recorded, else the "
                     "model's")
    acc.add_argument("--interpolation", default=None, help="default: --config's, else recorded, else the model's")
    acc.add_argument("--mean", type=_floats, default=None, help="0-255, in the channel order (default: "
                     "--config's, else recorded, else the model's)")
    acc.add_argument("--std", type=_floats, default=None, help="as --mean")
    acc.add_argument("--out", default="output/deploy_accuracy")
    speed = sub.add_parser("speed", help="float vs INT8 ONNX speed in onnxruntime (and MindSpore, torchvision)")
    speed.add_argument("--model", default="shufflenet_v2_x1_0")
    speed.add_argument("--image_size", type=int, default=224)
    speed.add_argument("--batches", default="1,32")
    speed.add_argument("--threads", type=int, default=2,
                       help="intra-op threads (onnxruntime, MindSpore, PyTorch), for every run")
    speed.add_argument("--rounds", type=int, default=5, help="rounds; each runs every configuration once")
    speed.add_argument("--seconds", type=float, default=3.0, help="timed seconds per configuration and round")
    speed.add_argument("--variants", default="float,qdq,torchvision,torchvision-int8",
                       help=f"comma-separated, from: {', '.join(VARIANTS)}; NAME@basic or NAME@extended runs the "
                            f"file with that onnxruntime graph optimization level (default all); the torchvision "
                            f"ones are skipped with a note where torch / torchvision are not installed or "
                            f"torchvision has no such model")
    speed.add_argument("--out", default="output/deploy_speed")
    run = sub.add_parser("time-one", help=argparse.SUPPRESS)  # one timing, in its own process
    run.add_argument("model_file", nargs="?", help="an ONNX file (not with --mindspore_model / --torchvision_model)")
    run.add_argument("--image_size", type=int, default=224, help="with --mindspore_model / --torchvision_model")
    run.add_argument("--batch", type=int, required=True)
    run.add_argument("--threads", type=int, required=True)
    run.add_argument("--seconds", type=float, required=True)
    run.add_argument("--opt_level", default="all")
    run.add_argument("--mindspore_model", default=None, help="time this project's network in MindSpore instead")
    run.add_argument("--torchvision_model", default=None, help="time torchvision's network in PyTorch instead")
    run.add_argument("--torch_int8", action="store_true", help="with --torchvision_model: its eager INT8 model")
    return p.parse_args(argv)


def _floats(text: str) -> List[float]:
    try:
        return [float(v) for v in text.strip("[]").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


# ---------------------------------------------------------------------------------------------- accuracy

def accuracy(args: argparse.Namespace) -> Dict:
    """Evaluate the checkpoint, its float ONNX export and INT8 exports on the same held-out images; the INT8
    files' top-1 agreement with the float file is also measured on the calibration split's images that
    were not drawn for calibration (more images, so fewer ties decide the comparison)."""
    import mindcv_shufflenet  # noqa: F401
    from mindcv_shufflenet import create_model, runtime
    from mindcv_shufflenet.data import create_eval_dataset, eval_transforms
    from mindcv_shufflenet.deploy import ExportInfo, export_model, load_exported
    from mindcv_shufflenet.engine import evaluate
    from mindcv_shufflenet.models.weights import checkpoint_classes

    model, pre = accuracy_preprocessing(args)
    runtime.init_runtime("CPU", "graph")

    def dataset():
        return create_eval_dataset(args.data_dir, args.val_split, 64, pre.input_size, pre.crop_pct,
                                   pre.interpolation, None, None, mean=pre.mean, std=pre.std,
                                   channel_order=pre.channel_order)

    num_classes = checkpoint_classes(args.ckpt_path)[0]
    net = create_model(model, num_classes=num_classes, checkpoint_path=args.ckpt_path)
    rows = [{"file": "checkpoint (MindSpore, float32)", **_scores(evaluate(net, dataset()))}]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = ExportInfo(model=model, num_classes=num_classes, image_size=pre.input_size, mean=tuple(pre.mean),
                      std=tuple(pre.std), crop_pct=pre.crop_pct, interpolation=pre.interpolation,
                      channel_order=pre.channel_order)
    float_file = export_model(net, out / "float.onnx", "ONNX", pre.input_size, info=info).path
    rows.append({"file": "float32 ONNX", **_scores(evaluate(load_exported(float_file), dataset()))})
    transforms = eval_transforms(pre.input_size, pre.crop_pct, pre.interpolation, pre.mean, pre.std,
                                 pre.channel_order)
    for method in args.methods.split(","):
        for seed in range(args.seeds):
            rows.append(_int8_row(args, method, seed, float_file, info, transforms, dataset))
            print(_row(rows[-1]), flush=True)
    return {"config": args.config, "model": model, "variant": args.variant, "checkpoint": args.ckpt_path,
            "preprocessing": {"input_size": pre.input_size, "crop_pct": pre.crop_pct,
                              "interpolation": pre.interpolation, "channel_order": pre.channel_order,
                              "mean": list(pre.mean), "std": list(pre.std)},
            "data": str(Path(args.data_dir) / args.val_split), "calib_images": args.calib_images,
            "cpu": _cpu_flags(), "rows": rows}  # the CPU decides whether onnxruntime's int8 kernels saturate


def accuracy_preprocessing(args: argparse.Namespace):
    """The model name and the evaluation preprocessing, from the sources validate.py uses: each option given,
    else the key --config's YAML sets, else what the checkpoint records it was trained with, else the
    model's metadata (``cli.eval_preprocessing``). The model: --model, else --config's, else the one the
    checkpoint names."""
    from mindcv_shufflenet.cli import PREPROCESSING_OPTIONS, eval_preprocessing
    from mindcv_shufflenet.config import load_config, load_yaml
    from mindcv_shufflenet.models.weights import read_checkpoint_with_meta

    given = {option: getattr(args, option) for option in PREPROCESSING_OPTIONS if getattr(args, option) is not None}
    model = args.model
    if args.config:
        yaml_keys = set(load_yaml(args.config))
        cfg = load_config(["--config", args.config], **given, **({"model": args.model} if args.model else {}))
        given.update({option: getattr(cfg, option) for option in PREPROCESSING_OPTIONS
                      if option in yaml_keys and option not in given})
        model = model or (cfg.model if "model" in yaml_keys else None)
    model = model or read_checkpoint_with_meta(args.ckpt_path)[1].get("model")
    if not model:
        raise ValueError(f"{args.ckpt_path} names no model: give --model NAME (or --config with a model key)")
    return model, eval_preprocessing(model, args.ckpt_path, given)


def _int8_row(args, method, seed, float_file, info, transforms, dataset) -> Dict:
    """Quantize with one calibration method and draw; its scores and its agreement with the float file."""
    from mindcv_shufflenet.deploy import load_exported
    from mindcv_shufflenet.deploy.quantize import QuantSettings, calibration_images, compare_logits, quantize_onnx
    from mindcv_shufflenet.engine import evaluate

    float_model = load_exported(float_file)
    calib_folder = Path(args.data_dir) / args.calib_split
    calib = calibration_images(calib_folder, args.calib_images, transforms, seed)
    start = time.perf_counter()
    settings = QuantSettings(method=method, **VARIANTS[args.variant])
    int8 = load_exported(quantize_onnx(float_file, Path(args.out) / f"int8-{method}-{seed}.onnx", calib.images,
                                       settings, info))
    seconds = time.perf_counter() - start
    held_out = _stack(dataset())
    on_val = compare_logits(float_model(held_out), int8(held_out))
    others = _other_images(calib_folder, set(calib.paths), transforms)
    on_others = compare_logits(float_model(others), int8(others))
    return {"file": f"INT8 {method}, draw {seed}", **_scores(evaluate(int8, dataset())),
            "agreement": on_val.top1_agreement, "max_abs_diff": on_val.max_abs_diff,
            "mean_abs_diff": on_val.mean_abs_diff, "other_images": on_others.images,
            "agreement_other": on_others.top1_agreement, "mean_abs_diff_other": on_others.mean_abs_diff,
            "quantize_seconds": seconds}


def _other_images(folder: Path, used: set, transforms) -> np.ndarray:
    import numpy as np

    from mindcv_shufflenet.deploy import find_images, load_image

    return np.stack([load_image(path, transforms) for path in find_images([folder]) if path not in used])


def _stack(dataset):
    import numpy as np

    return np.concatenate([image for image, _ in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)])


def _scores(result) -> Dict:
    return {"top1": result.top1, "top5": result.top5, "loss": result.loss, "images": result.images}


def _row(row: Dict) -> str:
    extra = (f" | {row['agreement']:.2f}% | {row['max_abs_diff']:.3f} | {row['mean_abs_diff']:.4f} | "
             f"{row['agreement_other']:.2f}% | {row['mean_abs_diff_other']:.4f} | {row['quantize_seconds']:.1f}"
             if "agreement" in row else " | - | - | - | - | - | -")
    return f"| {row['file']} | {row['top1']:.2f}% | {row['loss']:.4f}{extra} |"


def accuracy_table(result: Dict) -> str:
    lines = [f"{result['model']} (INT8 settings: {result['variant']}): {result['rows'][0]['images']} held-out images "
             f"of {result['data']}; INT8 calibrated on {result['calib_images']} training images per draw; 'other': "
             f"the training images not drawn; CPU flags: {result.get('cpu', 'unknown')}", "",
             "| model | top-1 | loss | top-1 agreement with float | max abs logit diff | mean abs logit diff | "
             "agreement, other training images | mean abs logit diff, other | quantization (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [_row(row) for row in result["rows"]]
    lines += ["", "| calibration | mean top-1 | mean loss | mean agreement | mean of mean abs logit diff | worst max "
              "abs diff | mean agreement, other | mean abs logit diff, other | mean quantization (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for method in dict.fromkeys(row["file"].split(",")[0] for row in result["rows"] if "agreement" in row):
        rows = [row for row in result["rows"] if row["file"].startswith(method + ",")]
        mean = lambda key, rows=rows: statistics.mean(r[key] for r in rows)  # noqa: E731
        lines.append(f"| {method} | {mean('top1'):.2f}% | {mean('loss'):.4f} | {mean('agreement'):.2f}% | "
                     f"{mean('mean_abs_diff'):.4f} | {max(r['max_abs_diff'] for r in rows):.3f} | "
                     f"{mean('agreement_other'):.2f}% | {mean('mean_abs_diff_other'):.4f} | "
                     f"{mean('quantize_seconds'):.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- speed

# INT8 variants tried for speed: name -> (QuantSettings keyword arguments)
VARIANTS = {
    "float": None,
    "qdq": {},                                                   # the export default: QDQ, u8 activations, s8 weights
                                                                 # in a 7-bit range
    "qdq-8bit": {"reduce_range": False},                         # s8 weights in the full 8-bit range
    "qdq-s8s8": {"activation_type": "int8"},
    "qdq-u8u8": {"weight_type": "uint8", "reduce_range": False},  # u8 weights, full range (no saturation either)
    "qoperator": {"quant_format": "qoperator"},
    "qdq-fc-float": {"float_op_types": ("Gemm",)},               # the classifier left in float
    "qdq-int8-logits": {"float_output_op_types": ()},            # the logits quantized too
    "mindspore": None,                                           # this project's network, MindSpore graph mode
    "torchvision": None,                                         # torchvision's float network, PyTorch eager
    "torchvision-int8": None,                                    # torchvision.models.quantization's, fbgemm, eager
}
TORCH_VARIANTS = ("torchvision", "torchvision-int8")
# torchvision.models.quantization has these (the same names as this project's)
TORCHVISION_QUANTIZED = ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")


def torch_unavailable(model: str) -> Optional[str]:
    """Why torchvision's models cannot be timed here (None: they can)."""
    import importlib.util

    missing = [name for name in ("torch", "torchvision") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed in {sys.executable} (run from a separate environment "
                f"with PyTorch, see docs/speed.md)")
    if model not in TORCHVISION_QUANTIZED:
        return f"torchvision has no {model} (its quantized ShuffleNets: {', '.join(TORCHVISION_QUANTIZED)})"
    # installed: do they import? (in a process of their own, as the timings run; not beside MindSpore here)
    proc = subprocess.run([sys.executable, "-c", "import torch, torchvision"], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"torch / torchvision do not import in {sys.executable} ({last})"
    return None


def make_speed_files(args: argparse.Namespace, folder: Path, skipped: Optional[List[str]] = None
                     ) -> Dict[str, Tuple[Optional[Path], str]]:
    """Configuration name -> (file, onnxruntime graph optimization level): the float ONNX export of
    ``args.model`` (random weights) and each INT8 variant (calibrated on random images: calibration does
    not change the speed). The MindSpore and torchvision configurations have no file (their level is
    "mindspore" / the variant's name); the torchvision ones are left out, with a note added to ``skipped``,
    where PyTorch or the model is not available."""
    import numpy as np

    import mindcv_shufflenet  # noqa: F401
    from mindcv_shufflenet import create_model, runtime
    from mindcv_shufflenet.deploy import export_model
    from mindcv_shufflenet.deploy.quantize import QuantSettings, quantize_onnx

    runtime.init_runtime("CPU", "graph")
    net = create_model(args.model, num_classes=1000)
    files = {"float": export_model(net, folder / "float.onnx", "ONNX", args.image_size).path}
    images = np.random.default_rng(0).standard_normal((32, 3, args.image_size, args.image_size)).astype(np.float32)
    configs, left_out, torch_reason = {}, [], None
    for name in args.variants.split(","):
        variant, _, level = name.partition("@")
        if variant not in VARIANTS or level not in ("", "basic", "extended", "all"):
            raise ValueError(f"unknown variant {name!r}: choose from {', '.join(VARIANTS)}, optionally with "
                             f"@basic, @extended or @all")
        if variant == "mindspore":
            configs[name] = (None, "mindspore")
            continue
        if variant in TORCH_VARIANTS:
            if torch_reason is None:
                torch_reason = torch_unavailable(args.model) or ""
            if torch_reason:
                left_out.append(name)
            else:
                configs[name] = (None, variant)
            continue
        if variant not in files:
            files[variant] = quantize_onnx(files["float"], folder / f"{variant}.onnx", images,
                                           QuantSettings(**VARIANTS[variant]))
        configs[name] = (files[variant], level or "all")
    if "float" not in configs:
        raise ValueError("--variants must include float (the reference of the ratios)")
    if left_out:
        note = f"{', '.join(left_out)} skipped: {torch_reason}"
        print(f"note: {note}", file=sys.stderr)
        if skipped is not None:
            skipped.append(note)
    return configs


def time_one(args: argparse.Namespace) -> None:
    """Time one file (or, with --mindspore_model, this project's network in MindSpore graph mode; with
    --torchvision_model, torchvision's in PyTorch) at one batch size in this process; print img/s and ms
    per batch as JSON."""
    extra: Dict = {}
    if args.mindspore_model:
        run, feed = _mindspore_runner(args)
    elif args.torchvision_model:
        run, feed, extra = _torch_runner(args)
    else:
        run, feed = _onnxruntime_runner(args)
    for _ in range(3):
        run(feed)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or runs < 3:
        run(feed)
        runs += 1
    per_batch = (time.perf_counter() - start) / runs
    print(json.dumps({"ms_per_batch": 1000 * per_batch, "img_per_s": args.batch / per_batch, **extra}))


def _mindspore_runner(args: argparse.Namespace):
    import numpy as np

    import mindcv_shufflenet  # noqa: F401  (CPU defaults, fast kernels)
    # isort: split
    import mindspore as ms

    from mindcv_shufflenet import create_model, runtime

    runtime.init_runtime("CPU", "graph", num_threads=args.threads)
    net = create_model(args.mindspore_model, num_classes=1000)
    net.set_train(False)
    size = args.image_size
    x = ms.Tensor(np.random.default_rng(0).standard_normal((args.batch, 3, size, size)).astype(np.float32))
    return (lambda feed: net(feed).asnumpy()), x


def _torch_runner(args: argparse.Namespace):
    """torchvision's network (random weights), float or INT8, eager, on ``args.threads`` intra-op threads and
    one inter-op thread. The INT8 model is what ``quantize=True`` builds (fbgemm backend: the quantizable
    network with its ReLUs replaced, modules fused, observers calibrated on a random batch, converted);
    without ``weights`` nothing is downloaded, and weights do not change the speed."""
    import io

    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    if args.torch_int8:
        torch.backends.quantized.engine = "fbgemm"
        from torchvision.models import quantization

        model = getattr(quantization, args.torchvision_model)(weights=None, quantize=True, backend="fbgemm")
    else:
        model = getattr(torchvision.models, args.torchvision_model)(weights=None)
    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    size = args.image_size
    x = torch.randn(args.batch, 3, size, size)

    def run(feed):
        with torch.inference_mode():
            return model(feed)

    return run, x, {"size_mb": buffer.getbuffer().nbytes / 1e6,
                    "versions": f"torch {torch.__version__}, torchvision {torchvision.__version__}"}


def _onnxruntime_runner(args: argparse.Namespace):
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[args.opt_level]
    session = ort.InferenceSession(args.model_file, options, providers=["CPUExecutionProvider"])
    shape = [args.batch, *session.get_inputs()[0].shape[1:]]
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    return (lambda inputs: session.run(None, inputs)), feed


def speed(args: argparse.Namespace) -> Dict:
    Path(args.out).mkdir(parents=True, exist_ok=True)
    # The model files are scratch (random weights): only the results are kept in --out.
    with tempfile.TemporaryDirectory(prefix="deploy_speed_") as models:
        return _speed_in(args, Path(models))


def _speed_in(args: argparse.Namespace, models: Path) -> Dict:
    load_before = os.getloadavg()
    skipped: List[str] = []
    configs = make_speed_files(args, models, skipped)
    batches = [int(b) for b in args.batches.split(",")]
    runs: Dict[str, List[Dict]] = {f"{name}#{batch}": [] for name in configs for batch in batches}
    for round_index in range(args.rounds):
        for batch in batches:
            for name, (path, level) in configs.items():  # alternating: every configuration once per round
                runs[f"{name}#{batch}"].append(_time_in_subprocess(path, level, batch, args))
        print(f"round {round_index + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.2f})", flush=True)
    rows = []
    for batch in batches:
        base = statistics.median(r["img_per_s"] for r in runs[f"float#{batch}"])
        for name, (path, _) in configs.items():
            samples = runs[f"{name}#{batch}"]
            ips = statistics.median(r["img_per_s"] for r in samples)
            rows.append({"file": name, "batch": batch, "img_per_s": ips,
                         "ms_per_batch": statistics.median(r["ms_per_batch"] for r in samples),
                         "speedup": ips / base,
                         "size_mb": path.stat().st_size / 1e6 if path else samples[0].get("size_mb"),
                         "samples_img_per_s": [round(r["img_per_s"], 1) for r in samples]})
    versions = sorted({r["versions"] for samples in runs.values() for r in samples if "versions" in r})
    return {"model": args.model, "image_size": args.image_size, "threads": args.threads, "rounds": args.rounds,
            "seconds": args.seconds, "load_before": load_before, "load_after": os.getloadavg(),
            "cpu": _cpu_flags(), "onnxruntime": _ort_version(), "torch": versions[0] if versions else None,
            "python": sys.executable, "skipped": skipped, "rows": rows}


def _time_in_subprocess(path: Optional[Path], level: str, batch: int, args: argparse.Namespace) -> Dict:
    command = [sys.executable, str(Path(__file__).resolve()), "time-one", "--batch", str(batch), "--threads",
               str(args.threads), "--seconds", str(args.seconds)]
    if level == "mindspore":
        command += ["--mindspore_model", args.model, "--image_size", str(args.image_size)]
    elif level in TORCH_VARIANTS:
        command += ["--torchvision_model", args.model, "--image_size", str(args.image_size)]
        command += ["--torch_int8"] if level == "torchvision-int8" else []
    else:
        command += [str(path), "--opt_level", level]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"timing {path or level} at batch {batch} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu_flags() -> str:
    """The x86 features that decide onnxruntime's int8 kernels (and whether they saturate)."""
    from mindcv_shufflenet.deploy import cpu_flags

    flags = cpu_flags()
    if flags is None:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return " ".join(f for f in wanted if f in flags.split())


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def speed_table(result: Dict) -> str:
    torch = f", {result['torch']} (eager; INT8: fbgemm)" if result.get("torch") else ""
    lines = [f"{result['model']} at {result['image_size']}x{result['image_size']}, onnxruntime "
             f"{result['onnxruntime']}{torch}, {result['threads']} thread(s), median of {result['rounds']} "
             f"alternating rounds; CPU flags: {result['cpu']}; load average before {result['load_before'][0]:.2f}, "
             f"after {result['load_after'][0]:.2f}", *(f"note: {note}" for note in result.get("skipped", [])), "",
             "| file | batch | img/s | ms per batch | vs float | size (MB) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['batch']} | {r['img_per_s']:.1f} | {r['ms_per_batch']:.2f} | "
              f"{r['speedup']:.2f}x | {'-' if r['size_mb'] is None else format(r['size_mb'], '.2f')} |"
              for r in result["rows"]]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.command == "time-one":
        time_one(args)
        return 0
    result = accuracy(args) if args.command == "accuracy" else speed(args)
    table = accuracy_table(result) if args.command == "accuracy" else speed_table(result)
    print(table)
    out = Path(args.out)
    (out / f"{args.command}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{args.command}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["time-one"]:  # a timing process: onnxruntime only, no MindSpore
        sys.exit(main())
    from mindcv_shufflenet import runtime

    runtime.run_cli(main)
