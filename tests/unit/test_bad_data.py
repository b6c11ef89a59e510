"""Bad files in the image folders do not stop a run: convertible images are read as RGB, files that cannot be
decoded are left out and counted in one warning, and a file that fails only when decoded is replaced in its
batch; epochs stay deterministic (the commands: integration/test_bad_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mindcv_shufflenet.data.datasets import create_eval_dataset, create_train_dataset
from mindcv_shufflenet.data.folders import skipped_summary, unreadable_reason
from tests.helpers import BAD_FILES

RAW = dict(mean=(0, 0, 0), std=(1, 1, 1), hflip=0.0)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """MindSpore writes the last image it failed to decode to ./abnormal_image.jpg: keep it out of the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("filename", sorted(name for name in BAD_FILES if not name.endswith(".md")))
def test_unreadable_files_are_recognised_cheaply(messy, filename):
    assert unreadable_reason(messy / "train" / "ant" / filename) == BAD_FILES[filename][1]


@pytest.mark.parametrize("filename", ["rgba.png", "la.png", "palette.png", "cmyk.jpg", "upper.JPEG", "tiff.tif",
                                      "bitmap.bmp", "0.png"])
def test_convertible_images_are_readable(messy, filename):
    assert unreadable_reason(messy / "train" / "ant" / filename) is None


def test_a_training_epoch_skips_unreadable_files_and_keeps_every_label(messy):
    data = create_train_dataset(str(messy), batch_size=4, image_size=8, num_parallel_workers=2, **RAW)
    skipped = {Path(path).name: reason for path, reason in data.skipped}
    assert skipped == {name: reason for name, (_, reason) in BAD_FILES.items()}  # hidden files are not listed
    # 18 good + 7 convertible + 16-bit grey + body.jpg (replaced when it fails to decode) = 27 read per epoch
    assert data.steps_per_epoch == 27 // 4
    for epoch in (0, 1):
        data = create_train_dataset(str(messy), batch_size=4, image_size=8, epoch=epoch, num_parallel_workers=2,
                                    **RAW)
        batches = list(data.iterator(output_numpy=True))
        assert len(batches) == data.steps_per_epoch
        for images, labels in batches:
            assert images.shape == (4, 3, 8, 8) and np.isfinite(images).all()
            # Every image shows its label's colour: no row is shifted, a replaced row keeps its own label.
            colour = images.reshape(4, 3, -1).mean(axis=2)
            for c, label in zip(colour, labels):
                if label == 2 and np.ptp(c) < 1:  # the 16-bit grey image of 'cat' is grey
                    continue
                assert int(np.argmax(c)) == int(label), (c, label)


def test_an_epoch_with_bad_files_repeats_exactly(messy):
    def epoch_arrays():
        data = create_train_dataset(str(messy), batch_size=4, image_size=8, epoch=3, seed=11,
                                    num_parallel_workers=2, hflip=0.5, color_jitter=0.3)
        return [(x.copy(), y.copy()) for x, y in data.iterator(output_numpy=True)]

    first, second = epoch_arrays(), epoch_arrays()
    assert len(first) == len(second)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1, x2)


def test_evaluation_leaves_unreadable_files_out_and_warns_once(messy):
    messages = []
    data = create_eval_dataset(str(messy), "val", batch_size=5, image_size=8, crop_pct=1.0, num_parallel_workers=2,
                               warn=messages.append)
    labels = np.concatenate([y for _, y in data.create_tuple_iterator(output_numpy=True)])
    assert len(labels) == 27
    assert len(messages) == 1
    assert messages[0].startswith(f"skipping 7 file(s) in {messy / 'val'} that are not readable images (")
    assert "2 not an image" in messages[0] and "1 empty file" in messages[0]


def test_skipped_summary_counts_reasons_and_shows_a_few():
    skipped = [(f"/d/train/a/{i}.jpg", "empty file") for i in range(4)] + [("/d/train/b/x.png", "not an image")]
    line = skipped_summary(skipped, "/d/train", shown=2)
    assert line == ("skipping 5 file(s) in /d/train that are not readable images (4 empty file, 1 not an image): "
                    "a/0.jpg, a/1.jpg, ...")
