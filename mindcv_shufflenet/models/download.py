"""Released weights, checked by their content, and downloaded into the weights folder when asked to.

Each released checkpoint's name carries the first hex digits of its SHA-256 (``ReleasedWeights.sha256_prefix``).
``pretrained=True`` hashes the local file and refuses one whose hash does not start with them.

Nothing is downloaded unless asked (training clusters are often offline): ``create_model(...,
pretrained=True, pretrained_url=URL)`` fetches the file from ``URL`` when it is not in the weights folder
yet, and the environment setting ``MINDCV_SHUFFLENET_DOWNLOAD`` does it for every model:

- unset, ``0`` or ``off``: never download (the default);
- ``1`` or ``on``: from the release URL (``model_info(name).weights.url``);
- a URL ending in ``/``: from a mirror laid out as the release server (``<URL>shufflenetv2/<file>``).

A download goes to ``<file>.part`` beside its final place, resumes such a file (HTTP ``Range``), is
checked against the hash, and only then renamed to its final name; a progress bar goes to stderr. Only
Python's own ``urllib`` is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, TextIO, Tuple

from .metadata import ReleasedWeights
from .registry import list_models, model_info

__all__ = ["ENV_DOWNLOAD", "pretrained_dir", "WeightsFileError", "DownloadError", "sha256_of", "check_released_file",
           "download_source", "download_file", "fetch_released_weights", "released_weights", "released_path"]

ENV_DOWNLOAD = "MINDCV_SHUFFLENET_DOWNLOAD"


def pretrained_dir() -> Path:
    """Where released checkpoints are looked for: ``$MINDCV_SHUFFLENET_HOME`` or
    ``~/.cache/mindcv_shufflenet``, laid out as on the release server (``shufflenetv2/<file>.ckpt``)."""
    return Path(os.environ.get("MINDCV_SHUFFLENET_HOME", Path.home() / ".cache" / "mindcv_shufflenet"))
CHUNK = 1 << 16
TIMEOUT = 60.0  # seconds without data before a download is given up (it resumes on the next try)

_verified: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> SHA-256 hex, hashed once per process


class WeightsFileError(ValueError):
    """A local weights file is not the released one (its content does not have the released hash)."""


class DownloadError(ValueError):
    """A download failed; nothing was written under the file's final name."""


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(path)
    return _verified[key]


def released_weights(model_name: str) -> ReleasedWeights:
    """The released checkpoint of ``model_name``; a ValueError naming the models that have one if it has none."""
    released = model_info(model_name).weights
    if released is None:
        raise ValueError(f"no released ImageNet weights for {model_name} (released: "
                         f"{', '.join(list_models(pretrained=True))}): train it, or pass checkpoint_path")
    return released


def released_path(released: ReleasedWeights) -> Path:
    """Where a released checkpoint is kept: below the weights folder, as on the release server."""
    return pretrained_dir() / released.relative_path


def check_released_file(path: str | os.PathLike, released: ReleasedWeights) -> None:
    """Raise :class:`WeightsFileError` (one line: the file, both hash prefixes, the fix) unless the file's
    SHA-256 starts with ``released.sha256_prefix``."""
    path = Path(path)
    expected = released.sha256_prefix.lower()
    found = _cached_sha256(path)
    if not found.startswith(expected):
        raise WeightsFileError(
            f"{path} is not the released {released.file_name}: its SHA-256 starts with {found[:len(expected)]}, "
            f"expected {expected}; delete it and download {released.url} again (or set {ENV_DOWNLOAD}=1)")


def download_source(released: ReleasedWeights, url: Optional[str] = None) -> Optional[str]:
    """Where to download ``released`` from: ``url`` if given, else what ``MINDCV_SHUFFLENET_DOWNLOAD`` says
    (see the module docstring); None: offline."""
    if url:
        return url
    setting = os.environ.get(ENV_DOWNLOAD, "").strip()
    if setting.lower() in ("", "0", "off", "false", "no"):
        return None
    if setting.lower() in ("1", "on", "true", "yes"):
        return released.url
    if setting.startswith(("http://", "https://")):
        return setting.rstrip("/") + "/" + released.relative_path
    raise ValueError(f"{ENV_DOWNLOAD}={setting!r} is not understood: use 1 (download from the release server), "
                     f"a mirror URL such as https://host/path/, or 0 (offline)")


def fetch_released_weights(model_name: str, url: Optional[str] = None, progress: bool = True) -> Path:
    """The verified local file of ``model_name``'s released weights, downloaded first if it is missing and a
    source is given (``url``) or configured (``MINDCV_SHUFFLENET_DOWNLOAD``).

    Raises:
        FileNotFoundError: missing and offline (the message gives the URL and the place to put the file).
        WeightsFileError: the local file does not have the released hash.
        DownloadError: the download failed (one line; a partial file is kept for resuming when useful).
    """
    released = released_weights(model_name)
    path = released_path(released)
    if not path.is_file():
        source = download_source(released, url)
        if source is None:
            raise FileNotFoundError(f"pretrained weights for {model_name} are not at {path}: download "
                                    f"{released.url} there, set {ENV_DOWNLOAD}=1 to let pretrained=True fetch "
                                    f"it, or set MINDCV_SHUFFLENET_HOME")
        download_file(source, path, released.sha256_prefix, progress=progress)
    check_released_file(path, released)
    return path


def download_file(url: str, dest: str | os.PathLike, sha256_prefix: str, progress: bool = True,
                  stream: Optional[TextIO] = None) -> Path:
    """Download ``url`` to ``dest``: into ``dest.part`` (resumed if it exists), checked against the SHA-256
    prefix, then renamed. Concurrent processes (msrun workers) take turns; the second finds the file there.

    Raises:
        DownloadError: HTTP error, connection failure, a body shorter than announced (``dest.part`` is kept
            to resume from), or content with another hash (``dest.part`` is removed).
    """
    dest = Path(dest)
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"cannot download {url}: only http:// and https:// URLs are fetched; for a local file, "
                            f"copy it to {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.with_name(dest.name + ".lock")):
        if dest.is_file():  # another process finished it while this one waited
            return dest
        _fetch(url, part, stream or sys.stderr, progress, dest)
        found = sha256_of(part)
        if not found.startswith(sha256_prefix.lower()):
            part.unlink()
            raise DownloadError(f"{url} sent a file whose SHA-256 starts with {found[:len(sha256_prefix)]}, expected "
                                f"{sha256_prefix}: not the released file (removed); check the URL or the mirror")
        os.replace(part, dest)
    return dest


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fetch(url: str, part: Path, stream: TextIO, progress: bool, dest: Path) -> None:
    """Bring ``part`` to the whole body of ``url``, resuming from what it holds."""
    have = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, have)
        if response is None:  # the server says the range is past the end: what we hold is not a prefix of it
            part.unlink()
            have = 0
            response = _open(url, 0)
        with response:
            if response.status != 206:  # the whole body (a server that ignores Range, or a fresh start)
                have = 0
            total = _total_length(response, have)
            with open(part, "ab" if have else "wb") as out:
                received = _copy(response, out, have, total, Progress(dest.name, total, stream, progress))
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as err:
        raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}; check the URL, or put the file at "
                            f"{dest}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        kept = f" ({part.stat().st_size} bytes kept in {part.name}: run again to resume)" if part.is_file() else ""
        raise DownloadError(f"cannot download {url}: {reason}{kept}") from None
    if total is not None and received < total:
        raise DownloadError(f"download of {url} stopped after {received} of {total} bytes ({part.name} kept: run "
                            f"again to resume)")


def _open(url: str, offset: int):
    """The response for ``url`` from byte ``offset`` on; None if the server answers 416 (nothing there)."""
    request = urllib.request.Request(url, headers={"User-Agent": "mindcv-shufflenet"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 (http/https only: download_file)
    except urllib.error.HTTPError as err:
        if offset and err.code == 416:
            return None
        raise


def _total_length(response, offset: int) -> Optional[int]:
    """The whole file's size from the response headers (None if not announced)."""
    content_range = response.headers.get("Content-Range", "")
    if response.status == 206:
        # "bytes START-END/TOTAL": a resumed body must start where the partial file ends
        start = content_range.split(" ", 1)[-1].split("-", 1)[0]
        if not start.isdigit() or int(start) != offset:
            raise http.client.HTTPException(f"the server resumed at byte {start}, not {offset}")
        total = content_range.rsplit("/", 1)[-1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _copy(response, out: BinaryIO, have: int, total: Optional[int], bar: Progress) -> int:
    """Append the body to ``out``; returns the bytes now held (those before plus those received)."""
    bar.update(have)
    while True:
        try:
            block = response.read(CHUNK)
        except http.client.IncompleteRead as err:
            out.write(err.partial)
            have += len(err.partial)
            break
        if not block:
            break
        out.write(block)
        have += len(block)
        bar.update(have)
    bar.finish(have, complete=total is None or have >= total)
    return have


class Progress:
    """A one-line text progress bar on ``stream`` (redrawn in place on a terminal; otherwise a line when the
    download starts and one when it ends)."""

    WIDTH = 30

    def __init__(self, label: str, total: Optional[int], stream: TextIO, enabled: bool = True) -> None:
        self.label, self.total, self.stream, self.enabled = label, total, stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.shown_at = 0.0
        self.started = False

    def _line(self, done: int) -> str:
        mb = f"{done / 1e6:.1f}" + (f"/{self.total / 1e6:.1f} MB" if self.total else " MB")
        if not self.total:
            return f"downloading {self.label}: {mb}"
        filled = int(self.WIDTH * min(done, self.total) / self.total)
        return (f"downloading {self.label}: [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{100 * done // self.total:3d}% {mb}")

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if not self.started:
            self.started = True
            if not self.tty:
                print(self._line(done), file=self.stream, flush=True)
        now = time.monotonic()
        if self.tty and now - self.shown_at >= 0.1:
            self.shown_at = now
            print("\r" + self._line(done), end="", file=self.stream, flush=True)

    def finish(self, done: int, complete: bool) -> None:
        if not self.enabled:
            return
        end = "" if complete else " (incomplete)"
        print(("\r" if self.tty else "") + self._line(done) + end, file=self.stream, flush=True)
