"""Run recipes for a couple of steps on the CPU with small images: a check that a YAML file loads, builds
and trains (amp level, loss scale, augmentations, schedule, checkpoints) before it goes to an NPU cluster.

    python scripts/try_configs.py --data_dir data/digits                      # every file under configs/
    python scripts/try_configs.py --data_dir data/digits configs/shufflenetv2/shufflenet_v2_x1_0_ascend.yaml

What is replaced, so that it runs here in seconds: the device (CPU, no msrun), the data folder, the image
size (32), the batch (4), the number of images (8) and epochs (1, no warmup), the
output folder, and the widths and depths of ShuffleNetV2.Large / ExLarge (140 / 271 M parameters: built
with the same structure, auxiliary heads included, at a few hundred thousand). Everything else is the
recipe's own. Prints one line per file; exits 1 if any failed.

A recipe for Ascend runs the Ascend path: its own step Cell (amp level, loss scale, EMA, ...) compiled in graph
mode and fed by dataset sinking, with the NPU-only operations (the float-status register of Ascend 910, the
device queue of ``ms.data_sink``) replaced by the CPU stand-ins of ``mindcv_shufflenet.npu``.

A recipe whose training graph equals one already compiled here but for its shapes runs in PyNative mode,
which skips compiling the whole step (about 2x faster here): its settings equal the other's in everything but the
model's width (shufflenet_v1_g3_05 / _10 / _15 / _20, say), the number of classes and the settings that
stay outside the graph (OUTSIDE_THE_GRAPH: the learning rate's values, the data augmentation). Its own
settings are still loaded, checked and trained with. `--all_graph` compiles every one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import npu
from mindcv_shufflenet.config import load_config
from mindcv_shufflenet.engine.trainer import train
from mindcv_shufflenet.models.shufflenet_v2_large import SHUFFLENET_V2_LARGE_CONFIGS

ROOT = Path(__file__).resolve().parents[1]

SMALL_RUN = {"device_target": "CPU", "distribute": False, "image_resize": 32,
             "batch_size": 4, "num_samples": 8, "epoch_size": 1, "warmup_epochs": 0, "decay_epochs": 1,
             "multi_step_decay_milestones": [1], "val_while_train": True, "log_interval": 0, "plot": False,
             "num_parallel_workers": 2, "resume": ""}


# The chip an Ascend recipe's stand-ins behave as: Ascend 910 (MindCV's figures), which reads overflow from
# its float-status register.
ASCEND_STANDIN_CHIP = "910A"


@contextlib.contextmanager
def npu_standins(chip: Optional[str]) -> Iterator[None]:
    """The Ascend path on this CPU, with stand-ins for the NPU-only operations (nothing when ``chip`` is None)."""
    saved = os.environ.get(npu.STANDIN_ENV)
    if chip:
        os.environ[npu.STANDIN_ENV] = chip
    else:
        os.environ.pop(npu.STANDIN_ENV, None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(npu.STANDIN_ENV, None)
        else:
            os.environ[npu.STANDIN_ENV] = saved


def for_ascend(path: Path) -> bool:
    """Whether the recipe is written for Ascend (then it runs the Ascend path here, with stand-ins)."""
    return load_config(["--config", str(path)]).device_target == "Ascend"


# ShuffleNetV2.Large / ExLarge at reduced widths and depths, their structure otherwise.
SMALL_LARGE_MODELS = {
    "large": dict(channels=(8, 8, 16, 32, 64, 128, 256, 64), stage_repeats=(2, 2, 3, 2), groups=4,
                  aux_channels=(16, 32, 48)),
    "exlarge": dict(channels=(8, 16, 32, 64, 128, 256, 512), stage_repeats=(2, 2, 3, 2), groups=4,
                    aux_channels=(16, 32, 48)),
}


@contextlib.contextmanager
def small_large_models() -> Iterator[None]:
    """``create_model("shufflenet_v2_large" / "shufflenet_v2_exlarge")`` builds the small versions inside."""
    saved = {variant: dict(config) for variant, config in SHUFFLENET_V2_LARGE_CONFIGS.items()}
    for variant, small in SMALL_LARGE_MODELS.items():
        SHUFFLENET_V2_LARGE_CONFIGS[variant].update(small)
    try:
        yield
    finally:
        for variant, config in saved.items():
            SHUFFLENET_V2_LARGE_CONFIGS[variant].clear()
            SHUFFLENET_V2_LARGE_CONFIGS[variant].update(config)


# The families whose models differ in channel counts only: (pattern of the model name, the family).
WIDTH_FAMILIES = (
    (r"shufflenet_v1_g(\d)_(05|10|15|20)", r"shufflenet_v1_g\1"),
    (r"shufflenet_v2_x\d_\d", "shufflenet_v2"),
    (r"shufflenet_v2_plus_(small|medium|large)", "shufflenet_v2_plus"),
)


def width_family(model: str) -> str:
    """The model's name without its width (the name itself for a model with no width siblings)."""
    for pattern, family in WIDTH_FAMILIES:
        if re.fullmatch(pattern, model):
            return re.sub(pattern, family, model)
    return model


# Settings that do not change the compiled training step: the learning rates (one table of the same length
# for every schedule in a one-epoch run, held in a Parameter), the loss scale's value (a Parameter), the
# data pipeline's settings (run outside the graph), checkpoint keeping, and the number of classes (a shape,
# as the width is).
OUTSIDE_THE_GRAPH = ("lr", "scheduler", "warmup_factor", "loss_scale", "dataset", "hflip", "color_jitter",
                     "scale", "ratio", "re_prob", "crop_pct", "num_classes", "keep_checkpoint_max",
                     "ckpt_save_dir")


def graph_siblings(files: Sequence[Path], data_dir: str) -> List[List[Path]]:
    """``files`` in groups that compile the same graph but for its shapes (each group in file order)."""
    groups: Dict[str, List[Path]] = {}
    for path in files:
        settings = load_config(["--config", str(path)], data_dir=data_dir, **SMALL_RUN).as_dict()
        settings["model"] = width_family(settings["model"])
        for key in OUTSIDE_THE_GRAPH:
            settings.pop(key)
        groups.setdefault(repr(sorted(settings.items())), []).append(path)
    return list(groups.values())


def plan_modes(files: Sequence[Path], data_dir: str) -> Dict[Path, str]:
    """Graph mode for the first file of each group of graph siblings, PyNative for the others; graph mode for
    every Ascend recipe (its sunk step is compiled, as on an NPU)."""
    return {path: "graph" if i == 0 or for_ascend(path) else "pynative"
            for group in graph_siblings(files, data_dir) for i, path in enumerate(group)}


def try_config(path: Path, data_dir: str, out_dir: Path, mode: str = "graph") -> float:
    """Train ``path``'s recipe for one short epoch in ``mode``; return the final training loss."""
    ascend = for_ascend(path)
    cfg = load_config(["--config", str(path)], data_dir=data_dir, ckpt_save_dir=str(out_dir), mode=mode,
                      **SMALL_RUN, **({} if ascend else {"dataset_sink_mode": False}))
    with small_large_models(), npu_standins(ASCEND_STANDIN_CHIP if ascend else None):
        result = train(cfg, log_to_stdout=False)
    if not (out_dir / f"{cfg.model}-last.ckpt").is_file():
        raise RuntimeError("no checkpoint written")
    return result.last_train_loss


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True, help="an image folder with train/ and val/ (e.g. the demo digits)")
    p.add_argument("configs", nargs="*", help="YAML files (default: every file under configs/)")
    p.add_argument("--all_graph", action="store_true",
                   help="graph mode for every recipe (default: PyNative for graph siblings)")
    args = p.parse_args(argv)
    files = [Path(f) for f in args.configs] or sorted((ROOT / "configs").rglob("*.yaml"))
    modes = {path: "graph" for path in files} if args.all_graph else plan_modes(files, args.data_dir)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(files):
            start = time.perf_counter()
            try:
                loss = try_config(path, args.data_dir, Path(tmp) / str(i), modes[path])
                how = f"{modes[path]}, sunk, NPU stand-ins" if for_ascend(path) else modes[path]
                print(f"ok    {path.relative_to(ROOT) if path.is_absolute() else path}: loss {loss:.3f} "
                      f"({how}, {time.perf_counter() - start:.1f} s)", flush=True)
            except Exception as err:  # report every file, then fail
                failed += 1
                print(f"FAIL  {path}: {type(err).__name__}: {err}", flush=True)
                traceback.print_exc(limit=3)
    print(f"{len(files) - failed} of {len(files)} recipes trained a step on the CPU")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
