"""curves.png is a by-product: a failing plot is one warning, never an error; the loss stays readable when the
first epoch's validation loss is huge (the plot command, and a run whose plot fails: integration/test_plot.py)."""

from __future__ import annotations

import sys
from typing import List

import pytest

from mindcv_shufflenet.engine.metrics import PlotError, plot_metrics, try_plot_metrics
from tests.helpers import PNG_MAGIC, RUN_RECORDS, write_run_folder


def test_the_loss_is_on_a_log_axis_so_a_huge_first_validation_loss_keeps_the_curve_readable(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder = write_run_folder(tmp_path)
    seen = {}
    original = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen["scales"] = [ax.get_yscale() for ax in fig.axes]
        seen["titles"] = [ax.get_title() for ax in fig.axes]
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        path = plot_metrics(folder / "metrics.jsonl", folder / "curves.png", title="t")
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert seen["scales"] == ["log", "linear", "linear"] and seen["titles"][0] == "loss (log scale)"
        # A loss within a factor of 10 reads better on a linear axis.
        narrow = write_run_folder(tmp_path / "narrow", [{**r, "val_loss": r["train_loss"] / 2} for r in RUN_RECORDS])
        plot_metrics(narrow / "metrics.jsonl", narrow / "curves.png")
        assert seen["scales"] == ["linear", "linear", "linear"] and seen["titles"][0] == "loss"
    finally:
        plt.Figure.savefig = original
    assert not list(folder.glob(".*partial*"))


def test_a_record_without_a_field_is_a_gap_not_a_failure(tmp_path):
    records = [dict(RUN_RECORDS[0]), {"epoch": 2, "train_loss": 1.0}, {"no_epoch": True}, dict(RUN_RECORDS[2])]
    del records[0]["val_loss"]
    records[2]["lr"] = "n/a"
    folder = write_run_folder(tmp_path, records)
    assert plot_metrics(folder / "metrics.jsonl", folder / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_a_plot_that_fails_is_one_warning_naming_the_cause(tmp_path):
    folder = write_run_folder(tmp_path)
    (folder / "curves.png").mkdir()  # the PNG cannot be put in place (as in a read-only folder)
    lines: List[str] = []
    assert try_plot_metrics(folder / "metrics.jsonl", folder / "curves.png", log=lines.append) is None
    assert lines == [f"warning: curves.png not written: cannot write {folder / 'curves.png'}: Is a directory; "
                     f"metrics.jsonl is intact: plot it later with python -m mindcv_shufflenet.plot {folder}"]
    assert not list(folder.glob(".*partial*"))

    (folder / "metrics.jsonl").write_text('{"lr": 0.1}\n')
    lines.clear()
    assert try_plot_metrics(folder / "metrics.jsonl", folder / "other.png", log=lines.append) is None
    assert lines[0].startswith(f"warning: other.png not written: {folder / 'metrics.jsonl'} holds no records with "
                               f"an epoch to plot; metrics.jsonl is intact")
    with pytest.raises(PlotError):
        plot_metrics(folder / "metrics.jsonl", folder / "other.png")


def test_missing_matplotlib_is_named(tmp_path, monkeypatch):
    folder = write_run_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" raises ModuleNotFoundError
    lines: List[str] = []
    assert try_plot_metrics(folder / "metrics.jsonl", folder / "curves.png", log=lines.append) is None
    assert lines[0].startswith("warning: curves.png not written: matplotlib is not installed (pip install "
                               "matplotlib); metrics.jsonl is intact")
