"""The run's metrics file (JSON lines, one record per epoch) and its plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional


class MetricsFile:
    """``metrics.jsonl`` in the run folder: ``{"epoch", "train_loss", "lr", "val_top1", ...}`` per line.

    On resume the records of epochs after the resumed one (written by the run that was killed) are
    dropped first, so the file always describes one continuous run.
    """

    def __init__(self, path: str | os.PathLike, resume_epoch: Optional[int] = None) -> None:
        self.path = Path(path)
        records = self.read(self.path) if self.path.exists() else []
        if resume_epoch is None:
            records = []
        else:
            records = [r for r in records if r.get("epoch", 0) <= resume_epoch]
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, self.path)

    def append(self, record: Dict[str, object]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    @staticmethod
    def read(path: str | os.PathLike) -> List[Dict[str, object]]:
        records = []
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
        return records


class PlotError(ValueError):
    """The metrics cannot be plotted (no records, or none with an epoch); the message says why."""


def _number(value: object) -> float:
    """A record's value as a float; NaN (a gap in the curve) when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    """Loss, accuracy and learning-rate curves per epoch, side by side, as a PNG (written under a temporary
    name, then renamed).

    A value missing from a record (or not a number) is a gap in its curve; records without an epoch are left
    out. The loss is on a log axis when it spans more than a factor of 10: the first epochs' validation loss,
    before BatchNorm statistics settle, can be thousands of times the final one, and would flatten the rest
    of the curve on a linear axis.

    Raises:
        PlotError: no record with an epoch to plot.
        ImportError: matplotlib is missing or broken.
        OSError: the PNG cannot be written.
    """
    records = [r for r in MetricsFile.read(metrics_path) if isinstance(r, dict)
               and math.isfinite(_number(r.get("epoch")))]
    if not records:
        raise PlotError(f"{metrics_path} holds no records with an epoch to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> List[float]:
        return [_number(r.get(key)) for r in records]

    epochs = series("epoch")
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    try:
        losses = series("train_loss")
        ax_loss.plot(epochs, losses, marker="o", ms=3, label="train")
        if any(math.isfinite(v) for v in series("val_loss")):
            ax_loss.plot(epochs, series("val_loss"), marker="o", ms=3, label="val")
            losses += series("val_loss")
        shown = [v for v in losses if math.isfinite(v)]
        if shown and min(shown) > 0 and max(shown) >= 10 * min(shown):  # else a linear axis reads better
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax_loss.set_yscale("log")
            ax_loss.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 0.2, 0.5, 1, 2, 5, ...
            ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax_loss.yaxis.set_minor_formatter(NullFormatter())
            ax_loss.set_title("loss (log scale)")
        else:
            ax_loss.set_title("loss")
        if any(math.isfinite(v) for v in series("val_top1") + series("val_top5")):
            ax_acc.plot(epochs, series("val_top1"), marker="o", ms=3, label="top-1")
            ax_acc.plot(epochs, series("val_top5"), marker="o", ms=3, label="top-5")
            ax_acc.legend()
        else:
            ax_acc.text(0.5, 0.5, "no validation\n(val_while_train: false)", ha="center", va="center",
                        transform=ax_acc.transAxes)
        ax_acc.set_title("accuracy (%)")
        ax_lr.plot(epochs, series("lr"), marker="o", ms=3)
        ax_lr.set_title("learning rate (end of epoch)")
        from matplotlib.ticker import MaxNLocator

        for ax in (ax_loss, ax_acc, ax_lr):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
            ax.grid(alpha=0.3)
        ax_loss.grid(alpha=0.1, which="minor")
        ax_loss.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        png_path = Path(png_path)
        tmp = png_path.with_name(f".{png_path.name}.{os.getpid()}.partial.png")
        try:
            fig.savefig(tmp, dpi=100)
            os.replace(tmp, png_path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        plt.close(fig)
    return png_path


PLOT_COMMAND = "python -m mindcv_shufflenet.plot"


def plot_failure(err: BaseException, png_path: str | os.PathLike, metrics_path: str | os.PathLike = "") -> str:
    """What stopped a plot, in a few words."""
    if isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] == "matplotlib":
        return "matplotlib is not installed (pip install matplotlib)"
    if isinstance(err, ImportError):
        return f"matplotlib cannot be imported ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    if isinstance(err, OSError):
        if metrics_path and err.filename is not None and str(err.filename) == str(metrics_path):
            return f"cannot read {metrics_path}: {err.strerror or err}"
        return f"cannot write {png_path}: {err.strerror or err}"
    if isinstance(err, PlotError):
        return str(err)
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}{': ' + text if text else ''}"


def try_plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "",
                     log: Callable[[str], None] = print) -> Optional[Path]:
    """:func:`plot_metrics` for the end of a run: a plot is a by-product, so any failure is one warning line
    naming its cause (and how to plot later), and None is returned instead of raising."""
    try:
        return plot_metrics(metrics_path, png_path, title)
    except Exception as err:  # noqa: BLE001 - whatever breaks the plot must not fail a finished run
        log(f"warning: {Path(png_path).name} not written: {plot_failure(err, png_path, metrics_path)}; "
            f"{Path(metrics_path).name} is intact: plot it later with {PLOT_COMMAND} {Path(metrics_path).parent}")
        return None
