"""What dataset sinking (Ascend) is built from, checked on the CPU: the chunks between two reads of the step
statistics, one dataset whose sampler covers the run's epochs in each epoch's own order, the configuration
it refuses, and the check of the files split between ranks."""

import threading

import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet.config import ConfigError, load_config
from mindcv_shufflenet.data import folders
from mindcv_shufflenet.data.datasets import create_train_dataset
from mindcv_shufflenet.data.folders import ScanShare, list_images
from mindcv_shufflenet.data.sampling import EpochsSampler, train_sample_indices
from mindcv_shufflenet.engine.feed import chunk_plan

RAW = dict(mean=(0, 0, 0), std=(1, 1, 1), hflip=0.0)
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


@pytest.mark.parametrize("steps, interval, first_alone, plan", [
    (22, 10, False, [10, 10, 2]),
    (23, 10, False, [10, 10, 3]),  # a prime step count still sinks 10 steps at a time
    (20, 10, False, [10, 10]),
    (5, 10, False, [5]),
    (7, 0, False, [7]),  # no log lines: one chunk per epoch
    (22, 10, True, [1, 9, 10, 2]),  # the compile step alone, then chunks still end on multiples of 10
    (1, 10, True, [1]),
])
def test_chunks_end_on_log_lines_whatever_the_step_count(steps, interval, first_alone, plan):
    assert chunk_plan(steps, interval, first_step_alone=first_alone) == plan


def test_chunk_plan_refuses_an_empty_epoch():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        chunk_plan(0, 10)


def test_epochs_sampler_reads_each_epoch_in_its_own_order():
    positions = np.array([0, 2, 3, 5, 6, 7, 9, 10, 11, 12, 14])  # readable images among 15 files
    options = dict(seed=5, num_shards=2, shard_id=1, shuffle=True, num_samples=None, aug_repeats=0)
    sampler = EpochsSampler(positions, first_epoch=3, num_epochs=4, per_epoch=4, **options)
    expected = np.concatenate([positions[train_sample_indices(len(positions), epoch=e, **options)][:4]
                               for e in range(3, 7)])
    assert list(sampler) == expected.tolist()
    assert list(sampler) == expected.tolist()  # a second pass is the same


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for c, colour in enumerate(COLOURS):
        (root / "train" / str(c)).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (12 + i, 10), colour).save(root / "train" / str(c) / f"{i}.png")
    return root


def _labels(data):
    return [label.tolist() for _, label in data.iterator(output_numpy=True)]


def test_one_dataset_over_epochs_gives_each_epochs_batches(folder):
    common = dict(batch_size=4, image_size=8, seed=11, num_parallel_workers=1, **RAW)
    sunk = create_train_dataset(str(folder), epoch=2, num_epochs=3, **common)
    assert sunk.steps_per_epoch == 3 and sunk.dataset.get_dataset_size() == 9
    got = _labels(sunk)
    for k, epoch in enumerate(range(2, 5)):
        per_epoch = _labels(create_train_dataset(str(folder), epoch=epoch, **common))
        assert got[3 * k:3 * k + 3] == per_epoch


def test_one_dataset_over_epochs_needs_whole_batches(folder):
    with pytest.raises(ValueError, match="drop_remainder"):
        create_train_dataset(str(folder), batch_size=4, image_size=8, num_epochs=2, drop_remainder=False, **RAW)


def test_sinking_with_a_smaller_last_batch_is_refused_on_any_device():
    with pytest.raises(ConfigError, match="drop_remainder: False .* dataset_sink_mode"):
        load_config(["--model", "shufflenet_v2_x0_5", "--device_target", "CPU", "--drop_remainder", "False"])
    cfg = load_config(["--model", "shufflenet_v2_x0_5", "--drop_remainder", "False", "--dataset_sink_mode", "False"])
    assert not cfg.drop_remainder


def test_ranks_share_the_check_of_the_files(tmp_path, monkeypatch):
    for c in range(2):
        (tmp_path / str(c)).mkdir()
        for i in range(6):
            Image.new("RGB", (8, 8), COLOURS[c]).save(tmp_path / str(c) / f"{i}.png")
    (tmp_path / "1" / "3.png").write_bytes(b"<html>not an image</html>")
    (tmp_path / "0" / "4.png").write_bytes(b"")

    checked = []
    real = folders.unreadable_reason
    monkeypatch.setattr(folders, "unreadable_reason", lambda path: checked.append(str(path)) or real(path))
    barrier, arrays = threading.Barrier(2), {}

    def all_reduce_for(rank):
        def all_reduce(values):
            arrays[rank] = values
            barrier.wait()
            total = arrays[0] + arrays[1]
            barrier.wait()
            return total
        return all_reduce

    listings = {}

    def scan(rank):
        listings[rank] = folders._scan_files(tmp_path, ["0", "1"], True, ScanShare(rank, 2, all_reduce_for(rank)))

    threads = [threading.Thread(target=scan, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 12 files: each rank checked its 6, then asked again only for the bad file the other rank found.
    assert len(checked) == 6 + 6 + 2
    alone = list_images(tmp_path, require_every_class=True)
    for listing in listings.values():
        assert listing.readable.tolist() == alone.readable.tolist()
        assert sorted(listing.skipped) == sorted(alone.skipped) and len(alone.skipped) == 2
