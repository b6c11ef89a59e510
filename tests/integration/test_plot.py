"""``python -m mindcv_shufflenet.plot RUN_DIR`` plots any run folder again, and a training run whose plot fails
still succeeds with one warning (the plot in process: unit/test_plot.py)."""

import json

import pytest

from tests.helpers import DEMO, PNG_MAGIC, write_run_folder


@pytest.mark.slow
def test_the_plot_command_plots_a_run_folder_again(run_cli, tmp_path):
    folder = write_run_folder(tmp_path / "run")
    proc = run_cli("-m", "mindcv_shufflenet.plot", folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {folder / 'curves.png'}"
    assert (folder / "curves.png").read_bytes().startswith(PNG_MAGIC)
    proc = run_cli("-m", "mindcv_shufflenet.plot", folder / "metrics.jsonl", "--out", str(tmp_path / "again.png"),
                   "--title", "again")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
def test_the_plot_command_refuses_a_folder_without_metrics_in_one_line(run_cli, tmp_path):
    proc = run_cli("-m", "mindcv_shufflenet.plot", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path} has no metrics.jsonl: give the folder a training run wrote (its ckpt_save_dir), or the "
        f"metrics file itself"]
    proc = run_cli("-m", "mindcv_shufflenet.plot", tmp_path / "nowhere")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nowhere'} does not exist")


@pytest.mark.slow
def test_a_run_whose_plot_fails_still_exits_0_with_a_warning(run_cli, tmp_path):
    """matplotlib broken at the end of a real training run: the run succeeds, metrics.jsonl stays."""
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    data = tmp_path / "digits"
    write_digits_imagefolder(data)
    broken = tmp_path / "broken" / "matplotlib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libfreetype.so.6: cannot open shared object file')\n")
    out = tmp_path / "run"
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", data, "--ckpt_save_dir", out, "--epoch_size", "1",
                   "--warmup_epochs", "0", "--decay_epochs", "1", "--num_samples", "64", "--batch_size", "32",
                   cwd=tmp_path, env={"PYTHONPATH": str(broken.parent)})  # the broken matplotlib comes first
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (f"warning: curves.png not written: matplotlib cannot be imported (libfreetype.so.6: cannot open shared "
            f"object file); metrics.jsonl is intact: plot it later with python -m mindcv_shufflenet.plot {out}"
            in proc.stdout.splitlines())
    assert not (out / "curves.png").exists()
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (out / "shufflenet_v2_x0_5-last.ckpt").is_file()
