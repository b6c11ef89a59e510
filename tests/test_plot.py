"""curves.png is a by-product: a failing plot is one warning and never fails a finished run; any run folder
can be plotted again with ``python -m mindcv_shufflenet.plot RUN_DIR``; the loss stays readable when the first
epoch's validation loss is huge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from mindcv_shufflenet.engine.metrics import PlotError, plot_metrics, try_plot_metrics

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Like the demo's: epoch 1's validation loss, before BatchNorm statistics settle, is ~1400.
RECORDS = [
    {"epoch": 1, "train_loss": 2.1, "lr": 0.05, "val_top1": 10.0, "val_top5": 50.0, "val_loss": 1412.0},
    {"epoch": 2, "train_loss": 1.2, "lr": 0.09, "val_top1": 61.0, "val_top5": 95.0, "val_loss": 1.3},
    {"epoch": 3, "train_loss": 0.6, "lr": 0.07, "val_top1": 88.0, "val_top5": 99.0, "val_loss": 0.4},
]


def _run_folder(folder: Path, records=RECORDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.yaml").write_text("model: shufflenet_v2_x0_5\nlr: 0.1\n")
    return folder


def _plot(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mindcv_shufflenet.plot", str(folder), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_loss_is_on_a_log_axis_so_a_huge_first_validation_loss_keeps_the_curve_readable(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder = _run_folder(tmp_path)
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
        narrow = _run_folder(tmp_path / "narrow", [{**r, "val_loss": r["train_loss"] / 2} for r in RECORDS])
        plot_metrics(narrow / "metrics.jsonl", narrow / "curves.png")
        assert seen["scales"] == ["linear", "linear", "linear"] and seen["titles"][0] == "loss"
    finally:
        plt.Figure.savefig = original
    assert not list(folder.glob(".*partial*"))


def test_a_record_without_a_field_is_a_gap_not_a_failure(tmp_path):
    records = [dict(RECORDS[0]), {"epoch": 2, "train_loss": 1.0}, {"no_epoch": True}, dict(RECORDS[2])]
    del records[0]["val_loss"]
    records[2]["lr"] = "n/a"
    folder = _run_folder(tmp_path, records)
    assert plot_metrics(folder / "metrics.jsonl", folder / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_a_plot_that_fails_is_one_warning_naming_the_cause(tmp_path):
    folder = _run_folder(tmp_path)
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
    folder = _run_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" raises ModuleNotFoundError
    lines: List[str] = []
    assert try_plot_metrics(folder / "metrics.jsonl", folder / "curves.png", log=lines.append) is None
    assert lines[0].startswith("warning: curves.png not written: matplotlib is not installed (pip install "
                               "matplotlib); metrics.jsonl is intact")


@pytest.mark.slow
def test_the_plot_command_plots_a_run_folder_again(tmp_path):
    folder = _run_folder(tmp_path / "run")
    proc = _plot(folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {folder / 'curves.png'}"
    assert (folder / "curves.png").read_bytes().startswith(PNG_MAGIC)
    proc = _plot(folder / "metrics.jsonl", "--out", str(tmp_path / "again.png"), "--title", "again")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_the_plot_command_refuses_a_folder_without_metrics_in_one_line(tmp_path):
    proc = _plot(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path} has no metrics.jsonl: give the folder a training run wrote (its ckpt_save_dir), or the "
        f"metrics file itself"]
    proc = _plot(tmp_path / "nowhere")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nowhere'} does not exist")


@pytest.mark.slow
def test_a_run_whose_plot_fails_still_exits_0_with_a_warning(tmp_path):
    """matplotlib broken at the end of a real training run: the run succeeds, metrics.jsonl stays."""
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    data = tmp_path / "digits"
    write_digits_imagefolder(data)
    broken = tmp_path / "broken" / "matplotlib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libfreetype.so.6: cannot open shared object file')\n")
    out = tmp_path / "run"
    env = {**__import__("os").environ, "PYTHONPATH": f"{broken.parent}:{ROOT}"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", DEMO, "--data_dir", str(data),
                           "--ckpt_save_dir", str(out), "--epoch_size", "1", "--warmup_epochs", "0",
                           "--decay_epochs", "1", "--num_samples", "64", "--batch_size", "32"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (f"warning: curves.png not written: matplotlib cannot be imported (libfreetype.so.6: cannot open shared "
            f"object file); metrics.jsonl is intact: plot it later with python -m mindcv_shufflenet.plot {out}"
            in proc.stdout.splitlines())
    assert not (out / "curves.png").exists()
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (out / "shufflenet_v2_x0_5-last.ckpt").is_file()
