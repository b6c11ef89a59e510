"""Listing an ImageNet-style folder (``root/<split>/<class>/<image>``) as MindSpore's ImageFolderDataset reads it,
and the cheap scan that leaves out files MindSpore cannot decode.

Decode (and RandomCropDecodeResize) turn grayscale, palette, grayscale+alpha, RGBA, CMYK and 16-bit PNG
images into 3-channel uint8 RGB (alpha is dropped, as by PIL's ``convert("RGB")``), so no conversion is
needed. WEBP and GIF fail to decode, so they are not in ``IMAGE_EXTENSIONS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# torchvision's ImageFolder list, less .webp (MindSpore's Decode cannot read it); matched case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff")


def find_classes(folder: str | os.PathLike) -> List[str]:
    """The class folder names of an image folder, sorted (their indices are the labels, as in MindCV and
    torchvision). Hidden folders (``.name``) are not classes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder not found: {folder}")
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder} has no class folders: expected {folder}/<class>/<image files>")
    return classes


def _extension(name: str) -> str:
    # What MindSpore's ImageFolderDataset compares with `extensions`: from the last dot on, case kept.
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


@dataclass(frozen=True)
class ImageListing:
    """An image folder as ImageFolderDataset lists it, and which of its files can be read."""

    folder: Path
    classes: List[str]
    counts: List[int]          # files per class that ImageFolderDataset lists (by extension)
    extensions: List[str]      # the exact-case extensions present, for ImageFolderDataset
    readable: np.ndarray       # positions (in ImageFolderDataset's class-then-name order) of the readable images
    skipped: List[Tuple[str, str]]  # (path, reason) of the files that are not read

    @property
    def num_images(self) -> int:
        return sum(self.counts)


# How each decodable format starts; a file with an image extension that starts otherwise cannot be decoded.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*",
               b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")
_UNSUPPORTED_SIGNATURES = {b"GIF8": "a GIF image", b"RIFF": "a WEBP image"}
# Where a complete JPEG / PNG ends: looked for in the last _TAIL bytes (some writers append data after it).
_ENDS = {b"\xff\xd8\xff": b"\xff\xd9", b"\x89PNG\r\n\x1a\n": b"IEND"}
_TAIL = 4096


def unreadable_reason(path: str | os.PathLike) -> Optional[str]:
    """Why MindSpore's Decode cannot read this file, or None if it can. Cheap: the first bytes decide the
    format and, for JPEG and PNG, the end marker is looked for; only a file without one is decoded (by PIL) to
    decide. A file damaged inside whose start and end look right passes: the pipeline replaces it when it fails."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if not head:
                return "empty file"
            signature = next((s for s in _SIGNATURES if head.startswith(s)), None)
            if signature is None:
                kind = next((v for k, v in _UNSUPPORTED_SIGNATURES.items() if head.startswith(k)), None)
                return f"{kind}, which MindSpore cannot decode" if kind else "not an image"
            end = _ENDS.get(signature)
            if end is None:
                return None
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - _TAIL))
            if end in f.read():
                return None
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    # No end marker: truncated, or a writer's oddity that still decodes. PIL decides, not MindSpore: MindSpore 2.10's
    # Decode kills the process (SIGFPE) on some truncated JPEGs.
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        return "truncated or corrupt"
    return None


@dataclass(frozen=True)
class ScanShare:
    """Split the check of the files between the ranks of a data-parallel job: rank ``shard_id`` checks every
    ``num_shards``-th file, and ``all_reduce`` (a sum over ranks) tells every rank which files the others
    found unreadable. Every rank must list the same folders in the same order (it is a collective)."""
    shard_id: int
    num_shards: int
    all_reduce: Callable[[np.ndarray], np.ndarray]


def list_images(folder: Path, *, require_every_class: bool, share: Optional[ScanShare] = None) -> ImageListing:
    """The class folders and images as ImageFolderDataset will list them (non-recursive, by extension, sorted by
    name), with the files that cannot be decoded (see :func:`unreadable_reason`) marked to be skipped. A listing is
    reused while no folder's modification time changes."""
    classes = find_classes(folder)
    key = (str(folder.resolve()), require_every_class, os.stat(folder).st_mtime_ns,
           tuple(os.stat(folder / name).st_mtime_ns for name in classes))
    if key not in _LISTINGS:
        if len(_LISTINGS) >= 4:  # a run reads one folder per split
            del _LISTINGS[next(iter(_LISTINGS))]
        _LISTINGS[key] = _scan_files(folder, classes, require_every_class, share)
    return _LISTINGS[key]


_LISTINGS: Dict[tuple, ImageListing] = {}


def _unreadable_reasons(paths: List[str], share: Optional[ScanShare]) -> List[Optional[str]]:
    """:func:`unreadable_reason` of every path; with ``share``, each rank checks its part and the ranks share
    which files failed (one all-reduce), then each rank asks again only for those few files' reasons."""
    # ~26 us per image from the page cache, ~0.14 ms from disk (measured; threads did not help on 2 cores).
    if share is None or share.num_shards == 1:
        return [unreadable_reason(path) for path in paths]
    mine = range(share.shard_id, len(paths), share.num_shards)
    reasons: List[Optional[str]] = [None] * len(paths)
    flags = np.zeros(len(paths), np.float32)
    for i in mine:
        reasons[i] = unreadable_reason(paths[i])
        flags[i] = reasons[i] is not None
    flagged = np.flatnonzero(share.all_reduce(flags) > 0.5)
    for i in flagged:
        if reasons[i] is None:
            reasons[i] = unreadable_reason(paths[i]) or "truncated or corrupt"
    return reasons


def _scan_files(folder: Path, classes: List[str], require_every_class: bool,
                share: Optional[ScanShare] = None) -> ImageListing:
    per_class: List[List[str]] = []
    extensions, skipped = set(), []
    for name in classes:
        paths = []
        for entry in sorted(os.scandir(folder / name), key=lambda e: e.name):
            ext = _extension(entry.name)
            if ext.lower() not in IMAGE_EXTENSIONS:
                if not entry.name.startswith(".") and entry.is_file():
                    skipped.append((entry.path, "no image file extension"))
                continue
            if not entry.is_file():
                raise ValueError(f"{entry.path} has an image file's extension but is not a file: rename or remove it")
            paths.append(entry.path)
            extensions.add(ext)
        per_class.append(paths)
    reasons = _unreadable_reasons([path for paths in per_class for path in paths], share)
    readable, position = [], 0
    for name, paths in zip(classes, per_class):
        good = 0
        for path in paths:
            reason = reasons[position]
            if reason is None:
                readable.append(position)
                good += 1
            else:
                skipped.append((path, reason))
            position += 1
        if good == 0 and require_every_class:
            unread = f" ({len(paths)} image file(s) there cannot be read)" if paths else ""
            raise ValueError(f"class folder {folder / name} has no images{unread}: add images or remove the folder "
                             f"(accepted extensions, any case: {' '.join(IMAGE_EXTENSIONS)})")
    counts = [len(paths) for paths in per_class]
    if not readable:
        shown = f"{classes[:5]}{'...' if len(classes) > 5 else ''}"
        unread = f" ({sum(counts)} image file(s) there cannot be read)" if sum(counts) else ""
        raise ValueError(f"{folder} has no images in its class folders {shown}{unread} "
                         f"(accepted extensions, any case: {' '.join(IMAGE_EXTENSIONS)})")
    return ImageListing(folder, classes, counts, sorted(extensions), np.asarray(readable, np.int64), skipped)


def skipped_summary(skipped: Sequence[Tuple[str, str]], folder: str | os.PathLike, shown: int = 3) -> str:
    """One line for the user: how many files of ``folder`` are skipped, why, and the first few."""
    reasons: Dict[str, int] = {}
    for _, reason in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    counts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    examples = ", ".join(os.path.relpath(path, folder) for path, _ in skipped[:shown])
    more = ", ..." if len(skipped) > shown else ""
    return f"skipping {len(skipped)} file(s) in {folder} that are not readable images ({counts}): {examples}{more}"


def split_folder(data_dir: str, split: str, option: str = "split") -> Path:
    """``data_dir/split`` (``split=""``: ``data_dir``), which must be a folder; the error names both options."""
    folder = Path(data_dir) / split if split else Path(data_dir)
    if not folder.is_dir():
        where = "data_dir" if not split or not Path(data_dir).is_dir() else option
        hint = f"{data_dir} has no {split!r} folder" if where == option else f"data_dir {data_dir} is not a folder"
        raise FileNotFoundError(f"data folder not found: {folder} ({hint}): check --data_dir and --{option}")
    return folder
