"""Run recipes for a couple of steps on the CPU with small images: a check that a YAML file loads, builds
and trains (amp level, loss scale, augmentations, schedule, checkpoints) before it goes to an NPU cluster.

    python scripts/try_configs.py --data_dir data/digits                      # every file under configs/
    python scripts/try_configs.py --data_dir data/digits configs/shufflenetv2/shufflenet_v2_x1_0_ascend.yaml

What is replaced, so that it runs here in seconds: the device (CPU, no msrun, no sinking), the data
folder, the image size (32), the batch (4), the number of images (8) and epochs (1, no warmup), and the
output folder. Everything else is the recipe's own. Prints one line per file; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mindcv_shufflenet  # noqa: E402,F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet.config import load_config  # noqa: E402
from mindcv_shufflenet.engine.trainer import train  # noqa: E402

SMALL_RUN = {"device_target": "CPU", "distribute": False, "dataset_sink_mode": False, "image_resize": 32,
             "batch_size": 4, "num_samples": 8, "epoch_size": 1, "warmup_epochs": 0, "decay_epochs": 1,
             "multi_step_decay_milestones": [1], "val_while_train": True, "log_interval": 0, "plot": False,
             "num_parallel_workers": 2, "resume": ""}


def try_config(path: Path, data_dir: str, out_dir: Path) -> float:
    """Train ``path``'s recipe for one short epoch; return the final training loss."""
    cfg = load_config(["--config", str(path)], data_dir=data_dir, ckpt_save_dir=str(out_dir), **SMALL_RUN)
    result = train(cfg, log_to_stdout=False)
    if not (out_dir / f"{cfg.model}-last.ckpt").is_file():
        raise RuntimeError("no checkpoint written")
    return result.last_train_loss


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True, help="an image folder with train/ and val/ (e.g. the demo digits)")
    p.add_argument("configs", nargs="*", help="YAML files (default: every file under configs/)")
    args = p.parse_args(argv)
    files = [Path(f) for f in args.configs] or sorted((ROOT / "configs").rglob("*.yaml"))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(files):
            start = time.perf_counter()
            try:
                loss = try_config(path, args.data_dir, Path(tmp) / str(i))
                print(f"ok    {path.relative_to(ROOT) if path.is_absolute() else path}: loss {loss:.3f} "
                      f"({time.perf_counter() - start:.1f} s)", flush=True)
            except Exception as err:  # report every file, then fail
                failed += 1
                print(f"FAIL  {path}: {type(err).__name__}: {err}", flush=True)
                traceback.print_exc(limit=3)
    print(f"{len(files) - failed} of {len(files)} recipes trained a step on the CPU")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
