"""Damaged checkpoint files are named as such, in this project's words, whoever reads them; ``resume: auto``
falls back from a damaged last.ckpt to the newest intact epoch checkpoint."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import List

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import create_model
from mindcv_shufflenet.checkpoints import CheckpointFileError, check_checkpoint_file, checkpoint_problem
from mindcv_shufflenet.engine.checkpoint import (
    NoIntactCheckpointError,
    atomic_save,
    epoch_checkpoints,
    find_resume_checkpoint,
)
from mindcv_shufflenet.models.weights import read_checkpoint, save_checkpoint

MODEL = "tiny"


def _small_checkpoint(path: Path, epoch: int = 1, crc: bool = True) -> Path:
    entries = [{"name": "w", "data": ms.Tensor(np.full((16, 8), epoch, np.float32))},
               {"name": "b", "data": ms.Tensor(np.arange(8, dtype=np.float32))}]
    if crc:
        atomic_save(entries, path, {"epoch": epoch})
    else:
        ms.save_checkpoint(entries, str(path), append_dict={"epoch": epoch})
    return path


def _flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x40
    path.write_bytes(bytes(data))  # in place: a hard link to the file sees the change too


def _cut(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])


# --------------------------------------------------------------------------------- what is wrong


def test_an_intact_checkpoint_passes_with_its_entries_and_crc(tmp_path):
    info = check_checkpoint_file(_small_checkpoint(tmp_path / "a.ckpt", crc=True))
    assert info.has_crc and info.entries == 3  # w, b, epoch
    assert not check_checkpoint_file(_small_checkpoint(tmp_path / "b.ckpt", crc=False)).has_crc
    assert checkpoint_problem(tmp_path / "a.ckpt") is None


@pytest.mark.parametrize("damage, expected", [
    (lambda p: _flip_byte(p, 0.5), "its contents do not match the CRC-32 saved with it: the file was changed or "
                                   "damaged after it was written"),
    (lambda p: _flip_byte(p, 0.01), "do not match the CRC-32"),
    (lambda p: _cut(p, 200), "the file is cut short: it ends at byte 200"),
    (lambda p: _cut(p, -3), "the file is cut short: its CRC record at the end lacks 3 of its 17 bytes"),
    (lambda p: _cut(p, -20), "the file is cut short: it ends at byte"),
    (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    (lambda p: p.write_bytes(b"<!DOCTYPE html>\n<html>404</html>"), "it is not a MindSpore checkpoint (it is an "
                                                                    "HTML/XML page"),
    (lambda p: p.write_bytes(b"weights go here\n"), "it is not a MindSpore checkpoint (it is text, starting "),
    (lambda p: p.write_bytes(bytes(range(256)) * 4), "it is not a MindSpore checkpoint (it starts with bytes 00 01"),
])
def test_a_damaged_file_is_named_with_what_is_wrong(tmp_path, damage, expected):
    path = _small_checkpoint(tmp_path / "model.ckpt")
    damage(path)
    with pytest.raises(CheckpointFileError) as err:
        check_checkpoint_file(path)
    assert str(err.value).startswith(f"cannot read checkpoint {path}: ")
    assert expected in str(err.value)


def test_a_pytorch_file_under_a_ckpt_name_says_how_to_convert_it(tmp_path):
    with zipfile.ZipFile(tmp_path / "resnet.ckpt", "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02")
    with pytest.raises(CheckpointFileError, match="ZIP archive, as PyTorch's .pth files are: convert it with "
                                                  "scripts/convert_weights.py"):
        check_checkpoint_file(tmp_path / "resnet.ckpt")


def test_safetensors_cut_short_or_misnamed_are_named(tmp_path):
    net = nn.Dense(4, 3)
    path = save_checkpoint(net, tmp_path / "w.safetensors")
    assert check_checkpoint_file(path).entries >= 2
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointFileError, match="cut short: .* before the end of its tensor data"):
        check_checkpoint_file(tmp_path / "cut.safetensors")
    (tmp_path / "w.ckpt").write_bytes(data)
    with pytest.raises(CheckpointFileError, match="it is safetensors data: name it .safetensors"):
        check_checkpoint_file(tmp_path / "w.ckpt")


def test_create_model_names_a_changed_byte_not_permissions(tmp_path, capfd):
    path = tmp_path / "net.ckpt"
    atomic_save(create_model("shufflenet_v2_x0_5", num_classes=2), path)
    _flip_byte(path)
    with pytest.raises(CheckpointFileError, match="do not match the CRC-32 saved with it"):
        create_model("shufflenet_v2_x0_5", num_classes=2, checkpoint_path=str(path))
    with pytest.raises(ValueError, match="do not match the CRC-32"):  # still a ValueError: exit status 2
        read_checkpoint(path)
    out, err = capfd.readouterr()
    assert "permission" not in (out + err).lower()  # MindSpore's own message (and its log line) never shows


# --------------------------------------------------------------------------------- resume: auto


def _run_folder(folder: Path, epochs: int, crc: bool = True) -> List[Path]:
    """Epoch files as training writes them, with last.ckpt a hard link to the newest."""
    folder.mkdir(exist_ok=True)
    paths = [_small_checkpoint(folder / f"{MODEL}-{e}_5.ckpt", e, crc) for e in range(1, epochs + 1)]
    os.link(paths[-1], folder / f"{MODEL}-last.ckpt")
    return paths


def test_resume_auto_reads_an_intact_last_checkpoint_silently(tmp_path):
    _run_folder(tmp_path, 3)
    lines: List[str] = []
    assert find_resume_checkpoint(tmp_path, MODEL, lines.append) == str(tmp_path / f"{MODEL}-last.ckpt")
    assert lines == []


def test_resume_auto_falls_back_past_a_damaged_last_and_its_hard_linked_epoch_file(tmp_path):
    paths = _run_folder(tmp_path, 3)
    last = tmp_path / f"{MODEL}-last.ckpt"
    assert os.path.samefile(last, paths[-1])
    _flip_byte(last)  # damages the epoch-3 file too: the same inode
    lines: List[str] = []
    assert find_resume_checkpoint(tmp_path, MODEL, lines.append) == str(paths[1])
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: {last} is damaged (its contents do not match the CRC-32 saved with it")
    assert f"resuming from {paths[1]}, the newest intact checkpoint; also damaged: {paths[2].name}" in lines[0]


def test_resume_auto_falls_back_from_a_truncated_last_checkpoint(tmp_path):
    paths = _run_folder(tmp_path, 2, crc=False)
    last = tmp_path / f"{MODEL}-last.ckpt"
    last.unlink()
    last.write_bytes(paths[-1].read_bytes()[:150])  # a copy cut short (no hard link, no CRC)
    lines: List[str] = []
    assert find_resume_checkpoint(tmp_path, MODEL, lines.append) == str(paths[1])
    assert "is damaged (the file is cut short" in lines[0] and str(paths[1]) in lines[0]


def test_resume_auto_without_last_uses_the_newest_epoch_file(tmp_path):
    paths = _run_folder(tmp_path, 2)
    (tmp_path / f"{MODEL}-last.ckpt").unlink()
    lines: List[str] = []
    assert find_resume_checkpoint(tmp_path, MODEL, lines.append) == str(paths[1])
    assert lines == [f"warning: {tmp_path / f'{MODEL}-last.ckpt'} is missing; resuming from {paths[1]}, the "
                     f"newest intact checkpoint"]


def test_resume_auto_with_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    paths = _run_folder(tmp_path, 2)
    _flip_byte(paths[0])
    _cut(paths[1], 100)  # rewritten in place: last.ckpt, its hard link, is cut short too
    with pytest.raises(NoIntactCheckpointError) as err:
        find_resume_checkpoint(tmp_path, MODEL, lambda line: None)
    message = str(err.value)
    assert message.startswith(f"resume: no intact checkpoint in {tmp_path} ({MODEL}-last.ckpt: the file is cut "
                              f"short")
    assert f"{MODEL}-2_5.ckpt: the file is cut short" in message and f"{MODEL}-1_5.ckpt: its contents do not " \
                                                                      f"match the CRC-32" in message
    assert message.endswith("train from scratch without --resume (in another --ckpt_save_dir)")
    assert isinstance(err.value, ValueError)  # exit status 2 from the command line


def test_resume_auto_in_an_empty_folder_starts_from_scratch(tmp_path):
    lines: List[str] = []
    assert find_resume_checkpoint(tmp_path, MODEL, lines.append) is None
    assert lines == [f"resume: auto found no checkpoint in {tmp_path}; starting from scratch"]


def test_epoch_checkpoints_are_ordered_by_epoch_not_name(tmp_path):
    for epoch in (2, 10, 1):
        _small_checkpoint(tmp_path / f"{MODEL}-{epoch}_5.ckpt", epoch)
    _small_checkpoint(tmp_path / f"{MODEL}-best.ckpt")
    _small_checkpoint(tmp_path / "other-3_5.ckpt")
    assert [p.name for p in epoch_checkpoints(tmp_path, MODEL)] == [f"{MODEL}-10_5.ckpt", f"{MODEL}-2_5.ckpt",
                                                                    f"{MODEL}-1_5.ckpt"]
