"""``synthetic_data: true``: every step gets one fixed random batch of the configured shape and classes, no file
is read, and train.py reports the step's ms/step and img/s."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mindcv_shufflenet.data.synthetic import synthetic_train_data
from tests.helpers import ROOT

PYTHON = sys.executable


@pytest.mark.parametrize("soft_labels", [False, True])
def test_every_step_gets_the_same_batch_of_the_configured_shape(soft_labels):
    data = synthetic_train_data(4, 16, 7, steps_per_epoch=3, soft_labels=soft_labels, seed=1)
    batches = list(data.iterator(output_numpy=True))
    assert len(batches) == 3 and data.images_per_epoch == 12 and data.num_classes == 7
    image, label = batches[0]
    assert image.shape == (4, 3, 16, 16) and image.dtype == np.float32
    if soft_labels:
        assert label.shape == (4, 7) and label.dtype == np.float32 and np.all(label.sum(axis=1) == 1)
    else:
        assert label.shape == (4,) and label.dtype == np.int32 and label.min() >= 0 and label.max() < 7
    for other_image, other_label in batches[1:]:
        assert np.array_equal(other_image, image) and np.array_equal(other_label, label)
    # The same batch again through a MindSpore dataset (what a sunk loop would read).
    rows = list(data.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert len(rows) == 3 and np.array_equal(rows[2][0], image) and np.array_equal(rows[2][1], label)


def test_the_batch_follows_the_seed():
    one, again, other = (synthetic_train_data(2, 8, 3, seed=s).image.asnumpy() for s in (5, 5, 6))
    assert np.array_equal(one, again) and not np.array_equal(one, other)


def _train(tmp_path, *extra):
    args = ["--model", "shufflenet_v2_x0_5", "--device_target", "CPU", "--synthetic_data", "true",
            "--data_dir", str(tmp_path / "no-such-folder"), "--ckpt_save_dir", str(tmp_path / "run"),
            "--batch_size", "4", "--image_resize", "32", "--num_samples", "16", "--epoch_size", "1",
            "--warmup_epochs", "0", "--log_interval", "2", "--compile_cache", "false", "--plot", "false", *extra]
    return subprocess.run([PYTHON, str(ROOT / "train.py"), *args], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)


@pytest.mark.slow
def test_train_py_times_the_step_on_synthetic_data_without_reading_a_file(tmp_path):
    proc = _train(tmp_path, "--num_classes", "5", "--val_while_train", "true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "no-such-folder").exists()
    assert ("synthetic data: one fixed random batch of 4 x 3 x 32 x 32, 5 classes, 4 steps per epoch; no file is "
            "read and no validation is run") in proc.stdout
    step_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch 1/1 step")]
    assert len(step_lines) == 2 and all("ms/step" in line and "img/s" in line for line in step_lines)
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and np.isfinite(record["train_loss"]) and "val_top1" not in record


def test_too_few_synthetic_steps_for_the_accumulation_is_a_one_line_error(tmp_path):
    proc = _train(tmp_path, "--gradient_accumulation_steps", "8")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: synthetic_data: 4 step(s) per epoch (num_samples // batch_size) are fewer than "
        "gradient_accumulation_steps=8: raise num_samples")
