"""Bad files in the image folders do not stop validate.py or train.py: one warning, and the run finishes (in
process: unit/test_bad_data.py)."""

import pytest

from tests.helpers import DEMO


@pytest.mark.slow
def test_validate_command_warns_and_reports_accuracy_on_a_messy_folder(run_cli, messy, tmp_path):
    import mindspore as ms

    from mindcv_shufflenet import create_model

    ms.save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=3), str(tmp_path / "net.ckpt"))
    proc = run_cli("validate.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", tmp_path / "net.ckpt", "--data_dir",
                   messy, "--image_resize", "16", "--crop_pct", "1.0", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"warning: skipping 7 file(s) in {messy / 'val'}" in proc.stderr
    assert "(27 images in" in proc.stdout


@pytest.mark.slow
def test_training_command_warns_lists_skipped_files_and_finishes(run_cli, messy, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", messy, "--batch_size", "8", "--epoch_size", "2",
                   "--warmup_epochs", "0", "--decay_epochs", "2", "--ckpt_save_dir", out, cwd=tmp_path, timeout=300,
                   env={"GLOG_v": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: skipping 7 file(s) in {messy / 'train'}" in proc.stdout
    assert "epoch 2/2 done" in proc.stdout
    listed = (out / "skipped_files.txt").read_text().splitlines()
    assert len(listed) == 7 and all("\t" in line for line in listed)
