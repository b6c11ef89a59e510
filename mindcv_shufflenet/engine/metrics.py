"""The run's metrics file (JSON lines, one record per epoch) and its plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional


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


def plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    """Loss, accuracy and learning-rate curves per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = MetricsFile.read(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path} holds no records to plot")
    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r.get("train_loss") for r in records], marker="o", ms=3, label="train")
    val = [(r["epoch"], r) for r in records if r.get("val_top1") is not None]
    if val:
        ax_loss.plot([e for e, _ in val], [r["val_loss"] for _, r in val], marker="o", ms=3, label="val")
        ax_acc.plot([e for e, _ in val], [r["val_top1"] for _, r in val], marker="o", ms=3, label="top-1")
        ax_acc.plot([e for e, _ in val], [r["val_top5"] for _, r in val], marker="o", ms=3, label="top-5")
        ax_acc.legend()
    else:
        ax_acc.text(0.5, 0.5, "no validation\n(val_while_train: false)", ha="center", va="center",
                    transform=ax_acc.transAxes)
    ax_lr.plot(epochs, [r.get("lr") for r in records], marker="o", ms=3)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy (%)"), (ax_lr, "learning rate (end of epoch)")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    ax_loss.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
