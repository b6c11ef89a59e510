"""Plot a training run's loss, accuracy and learning-rate curves again, from its metrics.jsonl.

    python -m mindcv_shufflenet.plot output/digits_demo                # writes output/digits_demo/curves.png
    python -m mindcv_shufflenet.plot output/digits_demo --out run.png --title "V2 0.5x, digits"

RUN_DIR is the folder a training run wrote (its ckpt_save_dir); a metrics.jsonl file may be given instead.
The title defaults to the model named in RUN_DIR/config.yaml. Bad input is one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from .engine.metrics import PlotError, plot_failure, plot_metrics

METRICS = "metrics.jsonl"


def _metrics_file(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give the folder a training run wrote (its ckpt_save_dir)")
    if not (path / METRICS).is_file():
        raise FileNotFoundError(f"{path} has no {METRICS}: give the folder a training run wrote (its "
                                f"ckpt_save_dir), or the metrics file itself")
    return path / METRICS


def _model_of(folder: Path) -> str:
    """The model named in the run's config.yaml, or "" when there is none to read."""
    try:
        import yaml

        config = yaml.safe_load((folder / "config.yaml").read_text())
    except Exception:  # noqa: BLE001 - the title is optional
        return ""
    return str(config.get("model") or "") if isinstance(config, dict) else ""


def plot_run(run_dir: str | os.PathLike, out: Optional[str | os.PathLike] = None,
             title: Optional[str] = None) -> Path:
    """Plot ``run_dir``'s metrics.jsonl (or that file itself) to ``out`` (default: ``curves.png`` beside it).

    Raises:
        FileNotFoundError: no such folder, or no metrics.jsonl in it.
        ValueError: nothing to plot, matplotlib missing or broken, or the PNG cannot be written; the message
            says which.
    """
    metrics = _metrics_file(run_dir)
    png = Path(out) if out else metrics.parent / "curves.png"
    try:
        return plot_metrics(metrics, png, _model_of(metrics.parent) if title is None else title)
    except PlotError:
        raise
    except (ImportError, OSError) as err:
        raise ValueError(plot_failure(err, png, metrics)) from None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindcv_shufflenet.plot",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help=f"the folder a training run wrote (its ckpt_save_dir), or its {METRICS}")
    parser.add_argument("--out", default=None, metavar="PNG", help="where to write (default: RUN_DIR/curves.png)")
    parser.add_argument("--title", default=None, help="default: the model in RUN_DIR/config.yaml")
    args = parser.parse_args(argv)
    print(f"wrote {plot_run(args.run_dir, args.out, args.title)}")
    return 0


if __name__ == "__main__":
    from .runtime import run_cli

    run_cli(main, debug="--debug" in sys.argv)
