"""A preflight for an Ascend host, run once before a long job (``scripts/ascend_preflight.sh``):

1. the Ascend toolkit and enough devices are visible (one line naming what is missing, exit 2, otherwise);
2. MindSpore's dry run (``MS_SIMULATION_LEVEL=1``) compiles rank 0's training graph of the ``--workers``-rank
   job without running it (it needs the toolkit, not free devices);
3. ``--steps`` sunk training steps of the recipe on synthetic images, on ``--workers`` devices under msrun:
   compile time, ms/step and img/s, written as JSON beside MindCV's published figures.

``--device CPU`` runs the stages a CPU can: the recipe's own step, sunk, with the NPU-only operations replaced
by :mod:`mindcv_shufflenet.npu`'s stand-ins, its dry run (one process: MindSpore has no distributed dry run on
the CPU) and a short timed run at a small image size and batch. Its figures say that the path works, not how
fast an NPU is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from . import npu, runtime

# MindCV's published training speed: 8 x Ascend 910, batch 64 per card, MindSpore 2.3.1, graph mode O2
# (MindCV's model cards for ShuffleNetV1 / ShuffleNetV2).
PUBLISHED = {
    "shufflenet_v2_x0_5": {"compile_seconds": 62.0, "ms_per_step": 41.87, "img_per_second": 12228.0},
    "shufflenet_v1_g3_05": {"compile_seconds": 169.0, "ms_per_step": 40.62, "img_per_second": 12605.0},
}
PUBLISHED_SETTING = "MindCV, 8 x Ascend 910, batch 64 per card, MindSpore 2.3.1 graph mode"
# The CPU mode's run: as small as the recipe's structure allows, so that it takes seconds.
CPU_DEFAULTS = {"workers": 1, "steps": 3, "image_size": 32, "batch_size": 4}
ASCEND_DEFAULTS = {"workers": 8, "steps": 20}
SYNTHETIC_CLASSES = 10
DISTINCT_IMAGES = 32  # written once; the rest of the folder is hard links to them


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ascend_preflight.sh", description=__doc__.splitlines()[0])
    p.add_argument("config", help="the recipe (YAML) the job will run")
    p.add_argument("--device", default="Ascend", choices=["Ascend", "CPU"],
                   help="Ascend (default), or CPU: the stages a CPU can run, with NPU stand-ins")
    p.add_argument("--workers", type=int, help="devices (msrun workers) of the job: default 8, or 1 on the CPU")
    p.add_argument("--steps", type=int, help="timed sunk steps: default 20, or 3 on the CPU")
    p.add_argument("--batch_size", type=int, help="per device: default the recipe's, or 4 on the CPU")
    p.add_argument("--image_size", type=int, help="default the recipe's, or 32 on the CPU")
    p.add_argument("--out", default="preflight.json", help="the report (JSON); default ./preflight.json")
    p.add_argument("--work_dir", help="where the synthetic images and logs go (default: a temporary folder)")
    args = p.parse_args(argv)
    defaults = CPU_DEFAULTS if args.device == "CPU" else ASCEND_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("workers", "steps", "batch_size", "image_size"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ValueError(f"--{key} must be >= 1, got {value}")
    if not Path(args.config).is_file():
        raise FileNotFoundError(f"config not found: {args.config}")
    return args


# ----------------------------------------------------------------------------------------------- stages

def check_toolkit(workers: int) -> str:
    """Stage 1: the Ascend plugin loads (CANN installed and set up) and ``workers`` devices are visible."""
    reason = runtime.device_unavailable_reason("Ascend")
    if reason:
        raise ValueError(f"preflight cannot run here: the Ascend toolkit is not usable ({reason}); install and set "
                         f"up CANN (`source .../ascend-toolkit/set_env.sh`), or use --device CPU for the stages a "
                         f"CPU can run")
    import mindspore as ms

    count = ms.device_context.ascend.device_count()
    if count < workers:
        raise ValueError(f"the job needs {workers} Ascend devices but {count} are visible (npu-smi info; "
                         f"ASCEND_RT_VISIBLE_DEVICES): lower --workers or free the devices")
    return f"{count} Ascend device(s) visible"


def write_synthetic_images(folder: Path, count: int, size: int) -> Path:
    """An image folder of ``count`` training images (random JPEGs, hard-linked copies of a few) in
    SYNTHETIC_CLASSES class folders: the recipe's own input pipeline reads it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    side = max(size + size // 7, 16)  # a little larger than the crop, as photos are
    sources = []
    for i in range(DISTINCT_IMAGES):
        path = folder / "sources" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, quality=90)
        sources.append(path)
    for i in range(count):
        target = folder / "train" / f"class_{i % SYNTHETIC_CLASSES:02d}" / f"{i:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(sources[i % DISTINCT_IMAGES], target)
        except OSError:  # a file system without hard links
            shutil.copyfile(sources[i % DISTINCT_IMAGES], target)
    return folder


def _rank_command(args: argparse.Namespace, data: Path, result: Path, steps: int) -> List[str]:
    return [sys.executable, "-m", "mindcv_shufflenet.preflight", "--rank", args.config, "--device", args.device,
            "--workers", str(args.workers), "--steps", str(steps), "--batch_size", str(args.batch_size or 0),
            "--image_size", str(args.image_size or 0), "--data_dir", str(data), "--result", str(result)]


def _standin_env(args: argparse.Namespace) -> Dict[str, str]:
    env = dict(os.environ)
    if args.device == "CPU":
        env[npu.STANDIN_ENV] = env.get(npu.STANDIN_ENV) or "910A"
    return env


def dry_run(args: argparse.Namespace, data: Path, work: Path) -> str:
    """Stage 2: compile rank 0's step graph without running it (MindSpore's dry run)."""
    env = _standin_env(args)
    env["MS_SIMULATION_LEVEL"] = "1"
    workers = args.workers
    if args.device == "Ascend":
        env.update(RANK_SIZE=str(workers), RANK_ID="0")
    else:
        workers = 1  # MindSpore refuses a distributed dry run on the CPU
    command = _rank_command(argparse.Namespace(**{**vars(args), "workers": workers}), data, work / "dry_run.json", 1)
    start = time.perf_counter()
    _run(command, env, work / "dry_run.log", "the dry run")
    ranks = f"rank 0 of {args.workers}" if args.device == "Ascend" else "one process; no distributed dry run on the CPU"
    return f"the step graph compiled without running ({ranks}) in {time.perf_counter() - start:.1f} s"


def timed_run(args: argparse.Namespace, data: Path, work: Path) -> Dict[str, float]:
    """Stage 3: ``--steps`` sunk steps on ``--workers`` devices; rank 0's figures."""
    result = work / "timed.json"
    command = _rank_command(args, data, result, args.steps)
    if args.workers > 1:
        msrun = shutil.which("msrun", path=str(Path(sys.executable).parent)) or "msrun"
        command = [msrun, "--worker_num", str(args.workers), "--local_worker_num", str(args.workers),
                   "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "--log_dir",
                   str(work / "msrun_logs"), "--join", "True", *command[:1], *command[1:]]
    _run(command, _standin_env(args), work / "timed.log", "the timed run")
    return json.loads(result.read_text())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: List[str], env: Dict[str, str], log: Path, what: str) -> None:
    with open(log, "w") as out:
        proc = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if line.startswith("error")), lines[-1] if lines else "")
        raise runtime.RunError(f"{what} failed (exit {proc.returncode}): {last.strip()} (full log: {log})")


# ----------------------------------------------------------------------------------------------- one rank

def rank_main(argv: List[str]) -> int:
    """One rank of a preflight run: build the recipe's run on the synthetic images, train ``--steps`` steps,
    and (rank 0) write compile time, ms/step and img/s to ``--result``."""
    p = argparse.ArgumentParser()
    p.add_argument("config")
    for key in ("--device", "--data_dir", "--result"):
        p.add_argument(key, required=True)
    for key in ("--workers", "--steps", "--batch_size", "--image_size"):
        p.add_argument(key, type=int, required=True)
    args = p.parse_args(argv)
    from .config import load_config
    from .engine.trainer import build_run, train_one_epoch

    overrides = dict(data_dir=args.data_dir, ckpt_save_dir=str(Path(args.result).parent / "run"),
                     device_target=args.device, distribute=args.workers > 1, epoch_size=1, val_while_train=False,
                     log_interval=0, plot=False, resume="", ckpt_path="", pretrained=False, warmup_epochs=0,
                     decay_epochs=1, multi_step_decay_milestones=[1],
                     compile_cache=False)  # the compile a new job pays, not a cached one
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.image_size:
        overrides["image_resize"] = args.image_size
    if args.device == "CPU":
        overrides["num_parallel_workers"] = 1
    batch = args.batch_size or load_config(["--config", args.config]).batch_size
    overrides["num_samples"] = args.steps * batch * args.workers  # --steps steps on every rank
    cfg = load_config(["--config", args.config], **overrides)
    run = build_run(cfg, log_to_stdout=True)
    train_one_epoch(run, 1)
    steps, seconds = run.meter.timed()
    if run.dist.is_main:
        figures = {"compile_seconds": round(run.meter.first_seconds, 3),
                   "ms_per_step": round(1000 * seconds / steps, 3) if steps else None,
                   "img_per_second": (round(steps * cfg.batch_size * run.dist.group_size / seconds, 1)
                                      if steps else None),
                   "sunk": run.sink, "batch_per_device": cfg.batch_size, "image_size": cfg.image_resize,
                   "amp_level": cfg.amp_level, "model": cfg.model}
        Path(args.result).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


# ----------------------------------------------------------------------------------------------- the checks

def preflight(args: argparse.Namespace) -> Dict[str, object]:
    from .config import load_config

    cfg = load_config(["--config", args.config])
    report: Dict[str, object] = {"config": args.config, "model": cfg.model, "device": args.device,
                                 "workers": args.workers, "steps": args.steps,
                                 "standin_chip": npu.standin_chip() or "910A" if args.device == "CPU" else None}
    devices = (check_toolkit(args.workers) if args.device == "Ascend"
               else "not checked on the CPU (the NPU-only operations run as stand-ins)")
    print(f"preflight of {args.config} ({cfg.model}) on {args.device}, {args.workers} worker(s)")
    print(f"[1/3] toolkit and devices: {devices}")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        batch = args.batch_size or cfg.batch_size
        data = write_synthetic_images(work / "images", args.workers * batch * args.steps,
                                      args.image_size or cfg.image_resize)
        print(f"[2/3] dry run: {dry_run(args, data, work)}")
        figures = timed_run(args, data, work)
    report["measured"] = figures
    report["published"] = ({**PUBLISHED[cfg.model], "setting": PUBLISHED_SETTING} if cfg.model in PUBLISHED
                           else None)
    speed = (f"{figures['ms_per_step']:.1f} ms/step, {figures['img_per_second']:.1f} img/s"
             if figures["ms_per_step"] else "one step only: no steady-state figure")
    print(f"[3/3] {args.steps} sunk steps: compile and first step {figures['compile_seconds']:.1f} s, {speed}"
          + (" (CPU, small images: a check of the path, not a speed)" if args.device == "CPU" else ""))
    if report["published"]:
        ref = report["published"]
        print(f"      published ({PUBLISHED_SETTING}): compile {ref['compile_seconds']:.0f} s, "
              f"{ref['ms_per_step']} ms/step, {ref['img_per_second']:.0f} img/s")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {args.out}")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--rank"]:
        return rank_main(argv[1:])
    preflight(parse_args(argv))
    return 0


if __name__ == "__main__":
    runtime.run_cli(main)
