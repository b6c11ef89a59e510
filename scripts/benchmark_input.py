"""The input pipeline's speed: img/s of the exact data pipeline train.py builds for a recipe, per worker count,
beside torchvision's DataLoader with the same augmentation and workers, each measured in a process of its own.

    python scripts/benchmark_input.py --config configs/shufflenetv2/shufflenet_v2_x0_5_ascend.yaml \\
        --data_dir /data/imagenet --workers 1,2,4,8 --batches 100 --repeats 3 --torch_python /opt/torch/bin/python
    python scripts/benchmark_input.py --config configs/shufflenetv2/shufflenet_v2_x1_0_cpu.yaml   # photo fixture

Without ``--data_dir`` the images are a fixture of real-photo JPEGs, 300-500 px on the long side: random crops of
scikit-learn's two sample photos (``--photos N`` of them, written once into ``--photos_dir``).

Method: every (worker count, framework) measurement is a fresh process pinned to as many cores as it has
workers (``--no_pin``: not pinned), so that ``img/s`` is what that many cores give. A round measures every
worker count and framework once, back to back; ``--repeats`` rounds, medians reported. A process reads
``--warmup`` batches (worker start-up, the first decodes), then times ``--batches`` batches.

- ``mindspore``: ``create_train_dataset`` with the options ``train.py`` passes for the recipe
  (``num_parallel_workers`` = the worker count), iterated as the train loop does.
- ``torchvision``: ``ImageFolder`` + ``DataLoader(num_workers=N, shuffle, drop_last, persistent_workers)`` with
  the recipe's augmentation in torchvision's ops (RandomResizedCrop, flips, ColorJitter or the auto-augment
  policy, ToTensor, Normalize, RandomErasing, MixUp / CutMix), run by ``--torch_python`` (a Python with torch
  and torchvision; PyTorch is not a dependency of this project). Skipped, with a note, when not given or when
  that Python cannot import them.

Prints a table (img/s, img/s per core) and the cores one Ascend 910 needs to feed MindCV's ShuffleNetV2 rate,
1,530 img/s per card, at the largest worker count measured; ``--out FILE`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

MINDSPORE, TORCH = "mindspore", "torchvision"
RESULT_TAG = "INPUT_BENCHMARK "  # a child's one line of results: this tag, then JSON
# MindCV's ShuffleNetV2 x0_5 trained at 12,228 img/s on 8 Ascend 910 (configs/shufflenetv2/README.md).
NPU_IMG_S = 1530
CHILD_TIMEOUT_S = 1800
PHOTO_SIDES = (300, 500)


# ----------------------------------------------------------------------------------------------- fixture

def write_photo_folder(root: Path, images: int, classes: int = 4, seed: int = 0) -> Path:
    """An image folder (``root/train/<class>/*.jpg``) of real-photo JPEGs: crops of scikit-learn's two sample
    photos (640 x 427), landscape or portrait with a short side 2/3 to 1 of the long one, resized to 300-500 px
    on the long side, JPEG quality 90, as ImageNet's photos mostly are. Written once; reused after."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    marker = root / f".complete-{images}-{classes}-{seed}"
    if marker.exists():
        return root
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i in range(images):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        aspect = rng.uniform(2 / 3, 1.0)  # short side / long side
        if rng.random() < 0.5:  # landscape
            ch = int(height * rng.uniform(0.7, 1.0))
            cw = min(width, int(ch / aspect))
        else:  # portrait
            cw = int(height * rng.uniform(0.7, 1.0))
            ch = min(height, int(cw / aspect))
        top, left = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
        crop = Image.fromarray(photo[top:top + ch, left:left + cw])
        scale = int(rng.integers(PHOTO_SIDES[0], PHOTO_SIDES[1] + 1)) / max(crop.size)
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.BILINEAR)
        folder = root / "train" / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        crop.save(folder / f"photo_{i:05d}.jpg", quality=90)
    marker.write_text("")
    return root


# ----------------------------------------------------------------------------------------------- the recipe

def recipe_config(config: str, data_dir: str, workers: int, batch_size: Optional[int]):
    """The recipe as train.py reads it, with this data folder and worker count."""
    from mindcv_shufflenet.config import load_config

    argv = ["--config", config, "--data_dir", data_dir, "--num_parallel_workers", str(workers)]
    if batch_size:
        argv += ["--batch_size", str(batch_size)]
    return load_config(argv)


def torch_spec(cfg) -> Dict[str, object]:
    """The recipe's augmentation, in the terms torchvision's ops take (for a Python that has no MindSpore)."""
    from mindcv_shufflenet.data.folders import find_classes, split_folder
    from mindcv_shufflenet.data.transforms import auto_augment_op, check_augment

    a = check_augment({key: getattr(cfg, key) for key in (
        "scale", "ratio", "hflip", "vflip", "color_jitter", "interpolation", "auto_augment", "re_prob", "re_scale",
        "re_ratio", "re_value", "mean", "std", "mixup", "cutmix", "cutmix_prob", "label_smoothing")})
    auto = auto_augment_op(a["auto_augment"], a["interpolation"], a["mean"])
    policy = None
    if auto is not None:  # the same policy and levels as MindSpore's op for the recipe's string
        policy = {"name": type(auto).__name__, "num_ops": getattr(auto, "num_ops", None),
                  "magnitude": getattr(auto, "magnitude", None),
                  "num_magnitude_bins": getattr(auto, "num_magnitude_bins", None),
                  "fill": list(auto.fill_value)}
    folder = split_folder(cfg.data_dir, cfg.train_split, "train_split")
    re_value = a["re_value"]
    return {"folder": str(folder), "num_classes": cfg.num_classes or len(find_classes(folder)),
            "batch_size": cfg.batch_size, "image_size": cfg.image_resize, "shuffle": cfg.shuffle,
            "drop_last": cfg.drop_remainder, "seed": cfg.seed, "scale": list(a["scale"]), "ratio": list(a["ratio"]),
            "hflip": a["hflip"], "vflip": a["vflip"], "interpolation": a["interpolation"],
            "color_jitter": list(a["color_jitter"]) if a["color_jitter"] else None, "auto_augment": policy,
            "mean": a["mean"], "std": a["std"], "re_prob": a["re_prob"], "re_scale": list(a["re_scale"]),
            "re_ratio": list(a["re_ratio"]), "re_value": re_value if isinstance(re_value, (int, float, str)) else 0,
            "mixup": a["mixup"], "cutmix": a["cutmix"], "cutmix_prob": a["cutmix_prob"]}


# ----------------------------------------------------------------------------------------------- children

def _time_batches(batches, warmup: int, count: int, batch_size: int) -> Dict[str, float]:
    """Read ``warmup`` batches, then time ``count`` more: img/s, and the seconds to the first batch."""
    start = time.perf_counter()
    first = None
    for i in range(warmup + count):
        if i == warmup:
            timed = time.perf_counter()
        next(batches)
        if first is None:
            first = time.perf_counter() - start
    seconds = time.perf_counter() - timed
    return {"img_s": count * batch_size / seconds, "seconds": seconds, "first_batch_s": first}


def child_mindspore(args: argparse.Namespace) -> Dict[str, float]:
    """train.py's own pipeline for the recipe: the same function, the same options (see trainer.build_run)."""
    from mindcv_shufflenet import runtime
    from mindcv_shufflenet.data.datasets import create_train_dataset
    from mindcv_shufflenet.data.folders import find_classes, split_folder
    from mindcv_shufflenet.engine.trainer import _train_dataset_options  # the options train.py passes

    cfg = recipe_config(args.config, args.data_dir, args.child_workers, args.batch_size)
    runtime.set_seed(cfg.seed)
    num_classes = cfg.num_classes or len(find_classes(split_folder(cfg.data_dir, cfg.train_split, "train_split")))
    options = _train_dataset_options(cfg, runtime.DistInfo(0, 1), num_classes)
    steps = create_train_dataset(cfg.data_dir, cfg.train_split, epoch=0, **options).steps_per_epoch
    epochs = math.ceil((args.warmup + args.batches) / steps)  # one pipeline over enough epochs, as sinking builds
    data = create_train_dataset(cfg.data_dir, cfg.train_split, epoch=0, num_epochs=epochs, **options)
    return _time_batches(data.iterator(), args.warmup, args.batches, cfg.batch_size)


def _torch_transforms(spec: Dict[str, object]):
    from torchvision import transforms as T

    inter = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
             "nearest": T.InterpolationMode.NEAREST, "area": T.InterpolationMode.BOX}[spec["interpolation"]]
    ops = [T.RandomResizedCrop(spec["image_size"], scale=tuple(spec["scale"]), ratio=tuple(spec["ratio"]),
                               interpolation=inter)]
    if spec["hflip"] > 0:
        ops.append(T.RandomHorizontalFlip(spec["hflip"]))
    if spec["vflip"] > 0:
        ops.append(T.RandomVerticalFlip(spec["vflip"]))
    policy = spec["auto_augment"]
    if policy:
        fill = policy["fill"]
        if policy["name"] == "AutoAugment":
            ops.append(T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, interpolation=inter, fill=fill))
        elif policy["name"] == "RandAugment":
            ops.append(T.RandAugment(policy["num_ops"], policy["magnitude"], policy["num_magnitude_bins"],
                                     interpolation=inter, fill=fill))
        else:
            ops.append(T.TrivialAugmentWide(policy["num_magnitude_bins"], interpolation=inter, fill=fill))
    elif spec["color_jitter"]:
        ops.append(T.ColorJitter(*spec["color_jitter"]))
    ops += [T.ToTensor(), T.Normalize([m / 255 for m in spec["mean"]], [s / 255 for s in spec["std"]])]
    if spec["re_prob"] > 0:
        ops.append(T.RandomErasing(spec["re_prob"], tuple(spec["re_scale"]), tuple(spec["re_ratio"]),
                                   value=spec["re_value"]))
    return T.Compose(ops)


def _torch_collate(spec: Dict[str, object]):
    """MixUp / CutMix on each batch as torchvision's reference scripts apply them, or the default collate."""
    from torch.utils.data import default_collate

    if not (spec["mixup"] > 0 or spec["cutmix"] > 0):
        return default_collate
    from torchvision.transforms import v2

    mixes = ([v2.MixUp(alpha=spec["mixup"], num_classes=spec["num_classes"])] if spec["mixup"] > 0 else []) + \
            ([v2.CutMix(alpha=spec["cutmix"], num_classes=spec["num_classes"])] if spec["cutmix"] > 0 else [])
    mix = v2.RandomApply([v2.RandomChoice(mixes)], p=spec["cutmix_prob"])
    return lambda batch: mix(*default_collate(batch))


def child_torchvision(args: argparse.Namespace) -> Dict[str, float]:
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    spec = json.loads(args.spec)
    torch.manual_seed(spec["seed"])
    dataset = ImageFolder(spec["folder"], transform=_torch_transforms(spec))
    workers = args.child_workers
    loader = DataLoader(dataset, batch_size=spec["batch_size"], shuffle=spec["shuffle"], drop_last=spec["drop_last"],
                        num_workers=workers, persistent_workers=True, collate_fn=_torch_collate(spec))

    def batches():
        while True:
            yield from loader

    return _time_batches(batches(), args.warmup, args.batches, spec["batch_size"])


def child_main(args: argparse.Namespace) -> int:
    if args.pin:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cores[:args.child_workers])
    result = child_mindspore(args) if args.child == MINDSPORE else child_torchvision(args)
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- parent

def torch_problem(python: Optional[str]) -> Optional[str]:
    """Why torchvision cannot be measured with ``python`` (None: it can)."""
    if not python:
        return "no --torch_python given"
    try:
        proc = subprocess.run([python, "-c", "import torch, torchvision; print(torch.__version__, "
                               "torchvision.__version__)"], capture_output=True, text=True, timeout=300)
    except OSError as err:
        return f"{python} cannot run ({err.strerror})"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return f"{python} cannot import torch and torchvision ({lines[-1] if lines else 'no message'})"
    return None


def run_child(command: List[str]) -> Dict[str, float]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    raise RuntimeError(f"{' '.join(command[:4])} ... failed (exit {proc.returncode}): "
                       f"{lines[-1] if lines else 'no output'}")


def child_command(python: str, framework: str, workers: int, args: argparse.Namespace, spec: str) -> List[str]:
    command = [python, str(Path(__file__).resolve()), "--child", framework, "--child_workers", str(workers),
               "--config", args.config, "--data_dir", args.data_dir, "--warmup", str(args.warmup),
               "--batches", str(args.batches)]
    if args.batch_size:
        command += ["--batch_size", str(args.batch_size)]
    if framework == TORCH:
        command += ["--spec", spec]
    return command + ([] if args.pin else ["--no_pin"])


def measure(args: argparse.Namespace, frameworks: Sequence[str], spec: str) -> Dict[str, Dict[int, List[dict]]]:
    """Every framework at every worker count, ``--repeats`` rounds, each in a process of its own."""
    results: Dict[str, Dict[int, List[dict]]] = {f: {w: [] for w in args.workers} for f in frameworks}
    pythons = {MINDSPORE: sys.executable, TORCH: args.torch_python}
    for round_index in range(args.repeats):
        for workers in args.workers:
            for framework in frameworks:
                run = run_child(child_command(pythons[framework], framework, workers, args, spec))
                results[framework][workers].append(run)
                print(f"round {round_index + 1}/{args.repeats}: {framework}, {workers} worker(s): "
                      f"{run['img_s']:.1f} img/s", file=sys.stderr, flush=True)
    return results


def cores_needed(img_s: float, cores: int, target: float = NPU_IMG_S) -> int:
    """Cores that give ``target`` img/s at the rate per core that ``cores`` cores gave (``img_s``)."""
    return math.ceil(target * cores / img_s)


def report(results: Dict[str, Dict[int, List[dict]]], args: argparse.Namespace, notes: Sequence[str]) -> str:
    """The markdown table and the cores-per-card line."""
    frameworks = list(results)
    head = "| workers | " + " | ".join(f"{f} img/s | {f} img/s per core" for f in frameworks) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(frameworks))]
    medians = {f: {w: statistics.median(r["img_s"] for r in runs) for w, runs in by_w.items()}
               for f, by_w in results.items()}
    for w in args.workers:
        cells = " | ".join(f"{medians[f][w]:.1f} | {medians[f][w] / w:.1f}" for f in frameworks)
        lines.append(f"| {w} | {cells} |")
    largest = max(args.workers)
    for f in frameworks:
        lines.append(f"\n{f}: {cores_needed(medians[f][largest], largest)} cores per Ascend 910 to feed MindCV's "
                     f"{NPU_IMG_S:,} img/s (at {largest} worker(s): {medians[f][largest]:.1f} img/s"
                     f"{', pinned to as many cores' if args.pin else ', not pinned'})")
    lines += [f"\nnote: {note}" for note in notes]
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="the training recipe whose pipeline is measured")
    parser.add_argument("--data_dir", default=None, help="an image folder with the recipe's train_split "
                        "(default: a photo fixture in --photos_dir)")
    parser.add_argument("--photos", type=int, default=256, help="images of the photo fixture")
    parser.add_argument("--photos_dir", default=str(Path(tempfile.gettempdir()) / "mindcv_shufflenet_photos"))
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--batches", type=int, default=50, help="timed batches per process")
    parser.add_argument("--warmup", type=int, default=5, help="batches read before the clock starts")
    parser.add_argument("--batch_size", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of processes (3 or more to quote)")
    parser.add_argument("--torch_python", default=None, help="a Python with torch and torchvision")
    parser.add_argument("--no_pin", dest="pin", action="store_false",
                        help="do not pin each process to as many cores as it has workers")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=(MINDSPORE, TORCH), help=argparse.SUPPRESS)
    parser.add_argument("--child_workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        try:
            args.workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
        except ValueError:
            parser.error(f"--workers must be comma-separated integers, got {args.workers!r}")
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if not args.workers or args.workers[0] < 1 or (args.pin and args.workers[-1] > usable):
            parser.error(f"--workers must be between 1 and the {usable} cores this process may use "
                         f"(or give --no_pin), got {args.workers}")
        for name in ("batches", "warmup", "repeats", "photos"):
            if getattr(args, name) < (0 if name == "warmup" else 1):
                parser.error(f"--{name} must be >= {0 if name == 'warmup' else 1}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    if args.data_dir is None:
        args.data_dir = str(write_photo_folder(Path(args.photos_dir), args.photos))
    cfg = recipe_config(args.config, args.data_dir, args.workers[0], args.batch_size)
    spec = json.dumps(torch_spec(cfg))
    frameworks, notes = [MINDSPORE], []
    problem = torch_problem(args.torch_python)
    if problem:
        notes.append(f"torchvision skipped: {problem}")
    else:
        frameworks.append(TORCH)
    results = measure(args, frameworks, spec)
    print(report(results, args, notes))
    if args.out:
        Path(args.out).write_text(json.dumps({"config": args.config, "data_dir": args.data_dir,
                                              "batch_size": cfg.batch_size, "pinned": args.pin,
                                              "results": results, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as err:  # a bad recipe or folder: one line, exit 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as err:  # a measurement process failed: its last line
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
