"""What is wrong with a checkpoint file, found before MindSpore reads it, said in this project's words.

MindSpore 2.10 reports a file whose CRC does not match as "Failed to read the checkpoint file ... May not
have permission to read it", and any other damage as "The file may be corrupted". This module reads the
file itself and names the problem: empty, not readable, cut short (and where), changed on disk after it
was written (CRC-32 mismatch), damaged at a given byte, or not a checkpoint at all (with what it looks
like instead: a PyTorch file, an HTML page, safetensors under a .ckpt name, ...).

A ``.ckpt`` is a protobuf ``Checkpoint`` message: a sequence of ``Value`` entries, each stored as the tag
byte 0x0a, a varint length and the entry's bytes. A file saved with ``crc_check=True`` (as training saves
them) ends with ``b"crc_num"`` and 10 bytes holding the CRC-32 of everything before it, big-endian. A
``.safetensors`` file is an 8-byte little-endian header length, a JSON header, then the tensor data.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

CRC_MARK = b"crc_num"
CRC_TRAILER = len(CRC_MARK) + 10  # the mark and the CRC-32 as 10 big-endian bytes
_ENTRY_TAG = 0x0A  # field 1 (Checkpoint.value), length-delimited


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read as one; the message names the file, what is wrong with it
    (``reason``) and, where there is one, what to do (``advice``)."""

    def __init__(self, path: str | os.PathLike, reason: str, advice: str = "") -> None:
        super().__init__(f"cannot read checkpoint {path}: {reason}" + (f"; {advice}" if advice else ""))
        self.path = str(path)
        self.reason = reason
        self.advice = advice


@dataclass(frozen=True)
class CheckpointFileInfo:
    path: str
    size: int  # bytes
    entries: int  # tensors and appended values (.ckpt) or tensors (.safetensors)
    has_crc: bool  # a CRC-32 was written with the file and matches it


def check_checkpoint_file(path: str | os.PathLike) -> CheckpointFileInfo:
    """Check that ``path`` is a whole, unchanged checkpoint (``.ckpt`` or ``.safetensors``).

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointFileError: the file is empty, unreadable, cut short, changed since it was written (CRC),
            damaged, or not a checkpoint; the message says which, and where in the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    fail = _failer(path)
    if path.is_dir():
        raise fail("it is a folder, not a checkpoint file")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise fail("no permission to read it (check the file's owner and mode)") from None
    except OSError as err:
        raise fail(f"reading it failed: {err.strerror or err}") from None
    if not data:
        raise fail("the file is empty (0 bytes)")
    if path.suffix == ".safetensors":
        return _check_safetensors(path, data, fail)
    return _check_ckpt(path, data, fail)


def checkpoint_problem(path: str | os.PathLike) -> Optional[str]:
    """Why ``path`` cannot be read as a checkpoint (one line, without the file name), or None when it is whole."""
    try:
        check_checkpoint_file(path)
    except FileNotFoundError:
        return "the file does not exist"
    except CheckpointFileError as err:
        return err.reason
    return None


def _failer(path: Path):
    def fail(reason: str, advice: str = "") -> CheckpointFileError:
        return CheckpointFileError(path, reason, advice)
    return fail


def _check_ckpt(path: Path, data: bytes, fail) -> CheckpointFileInfo:
    size = len(data)
    body, has_crc = data, False
    if size >= CRC_TRAILER and data[-CRC_TRAILER:-10] == CRC_MARK:
        body, has_crc = data[:-CRC_TRAILER], True
        stored = int.from_bytes(data[-10:], "big")
        if zlib.crc32(body) != stored:
            # A file cut short inside its trailer cannot end with the whole mark, so this is a changed byte.
            raise fail(f"its contents do not match the CRC-32 saved with it: the file was changed or damaged "
                       f"after it was written ({size} bytes)", "use another copy, or an earlier checkpoint")
    offset, entries, name = 0, 0, ""
    while offset < len(body):
        start = offset
        if body[offset] != _ENTRY_TAG:
            rest = body[offset:]
            if len(rest) < CRC_TRAILER and (rest.startswith(CRC_MARK) or CRC_MARK.startswith(rest)):
                raise fail(f"the file is cut short: its CRC record at the end lacks "
                           f"{CRC_TRAILER - len(rest)} of its {CRC_TRAILER} bytes")
            if start == 0:
                raise fail(f"it is not a MindSpore checkpoint ({_looks_like(data)})")
            raise fail(f"its contents are damaged at byte {start} of {size} (after entry {entries} "
                       f"{name!r}, the bytes there are not checkpoint data)")
        length, offset = _varint(body, offset + 1)
        if length is None:
            raise fail(f"the file is cut short: it ends inside the header of entry {entries + 1} "
                       f"(after {name!r}), at byte {size}")
        if offset + length > len(body):
            entry_name = _entry_name(body[offset:])
            what = f"entry {entries + 1}" + (f" ({entry_name!r})" if entry_name else "")
            if start == 0 and not entry_name:
                raise fail(f"it is not a MindSpore checkpoint ({_looks_like(data)})")
            raise fail(f"the file is cut short: it ends at byte {size}, {offset + length - len(body)} bytes "
                       f"before the end of {what}; an interrupted copy or download?")
        name = _entry_name(body[offset:offset + length]) or name
        offset += length
        entries += 1
    return CheckpointFileInfo(str(path), size, entries, has_crc)


def _check_safetensors(path: Path, data: bytes, fail) -> CheckpointFileInfo:
    size = len(data)
    if size < 8:
        raise fail(f"the file is cut short or not a safetensors file ({size} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > size - 8:
        if data[:1] in (b"\x0a", b"{") or header_len > 100_000_000:
            raise fail(f"it is not a safetensors file ({_looks_like(data)})")
        raise fail(f"the file is cut short: it ends at byte {size}, inside its {header_len}-byte header")
    try:
        header = json.loads(data[8:8 + header_len])
    except (ValueError, UnicodeDecodeError):
        raise fail(f"it is not a safetensors file (its header is not JSON; {_looks_like(data)})") from None
    if not isinstance(header, dict):
        raise fail("it is not a safetensors file (its header is not a JSON object)")
    tensors = {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    end = max((int(v.get("data_offsets", (0, 0))[1]) for v in tensors.values()), default=0)
    if 8 + header_len + end > size:
        raise fail(f"the file is cut short: it ends at byte {size}, {8 + header_len + end - size} bytes before "
                   f"the end of its tensor data; an interrupted copy or download?")
    return CheckpointFileInfo(str(path), size, len(tensors), False)


def _varint(data: bytes, offset: int) -> Tuple[Optional[int], int]:
    value, shift = 0, 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset += 1
        if not byte & 0x80:
            return value, offset
        shift += 7
    return None, offset


def _entry_name(entry: bytes) -> str:
    """The ``tag`` (parameter name) at the start of a ``Value`` entry, if it is readable there."""
    if not entry or entry[0] != _ENTRY_TAG:
        return ""
    length, start = _varint(entry, 1)
    if length is None or length > 1024 or start + length > len(entry):
        return ""
    try:
        return entry[start:start + length].decode("utf-8")
    except UnicodeDecodeError:
        return ""


def _looks_like(data: bytes) -> str:
    head = data[:64]
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive, as PyTorch's .pth files are: convert it with scripts/convert_weights.py"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "it is a Python pickle, as older PyTorch files are: convert it with scripts/convert_weights.py"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy array"
    if len(data) >= 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data):
        return "it is safetensors data: name it .safetensors"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        return "it is an HTML/XML page, e.g. a download that returned an error page"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        return f"it is text, starting {text[:24]!r}"
    return f"it starts with bytes {head[:8].hex(' ')}"
