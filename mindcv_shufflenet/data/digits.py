"""A small real image folder for demos and tests, made offline from scikit-learn's bundled handwritten digits
(``sklearn.datasets.load_digits``: 1797 8x8 greyscale images, 10 classes).

    python -m mindcv_shufflenet.data.digits --out DIR

writes ``DIR/train/<digit>/<index>.png`` and ``DIR/val/<digit>/<index>.png`` (a stratified split), the layout
``create_train_dataset`` / ``create_eval_dataset`` read. Needs the ``demo`` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

MARKER = "digits.json"  # written last: its presence means the folder is complete


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("the digits demo data needs scikit-learn: pip install 'mindcv-shufflenet[demo]'") from None
    return load_digits()


def _split(targets: np.ndarray, val_fraction: float, seed: int) -> Dict[str, List[int]]:
    """Stratified: in each class a seeded shuffle, the first ``round(n * val_fraction)`` go to val."""
    rng = np.random.default_rng(seed)
    split: Dict[str, List[int]] = {"train": [], "val": []}
    for digit in range(10):
        members = np.flatnonzero(targets == digit)
        members = members[rng.permutation(len(members))]
        n_val = int(round(len(members) * val_fraction))
        split["val"] += sorted(members[:n_val].tolist())
        split["train"] += sorted(members[n_val:].tolist())
    return split


def _read_marker(out_dir: Path) -> Optional[dict]:
    try:
        return json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def write_digits_imagefolder(out_dir: str | os.PathLike, val_fraction: float = 0.2, seed: int = 0,
                             upscale: int = 4) -> Dict[str, int]:
    """Write the digits as RGB PNGs (grey levels 0..16 scaled to 0..255, enlarged ``upscale`` times with
    nearest-neighbour so the pixels stay exact) in ``out_dir/{train,val}/<digit>/``; return the counts
    ``{"train": n, "val": n, "num_classes": 10}``.

    Deterministic in its arguments and idempotent: a complete folder written with the same arguments is left
    alone. The files are written to a temporary folder beside ``out_dir`` and renamed into place, so an
    interrupted run leaves no partial folder; several processes may call this at once."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
        raise ValueError(f"upscale must be an integer >= 1, got {upscale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    out_dir = Path(out_dir)
    params = {"val_fraction": float(val_fraction), "seed": seed, "upscale": upscale}

    def existing() -> Optional[Dict[str, int]]:
        marker = _read_marker(out_dir)
        if marker is None:
            if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
                raise FileExistsError(f"{out_dir} exists and is not a digits folder written by this function: "
                                      f"choose another --out")
            return None
        if marker.get("params") != params:
            raise FileExistsError(f"{out_dir} holds digits written with {marker.get('params')}, not {params}: "
                                  f"choose another --out or remove it")
        return marker["counts"]

    counts = existing()
    if counts is not None:
        return counts

    from PIL import Image

    digits = _load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    split = _split(digits.target, val_fraction, seed)
    counts = {"train": len(split["train"]), "val": len(split["val"]), "num_classes": 10}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        for part, indices in split.items():
            for digit in range(10):
                (tmp / part / str(digit)).mkdir(parents=True)
            for i in indices:
                grey = np.kron(images[i], np.ones((upscale, upscale), dtype=np.uint8))
                rgb = np.repeat(grey[:, :, None], 3, axis=2)
                Image.fromarray(rgb, "RGB").save(tmp / part / str(int(digits.target[i])) / f"{i:04d}.png")
        (tmp / MARKER).write_text(json.dumps({"params": params, "counts": counts}, indent=1) + "\n")
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            try:
                out_dir.rmdir()
            except OSError:  # another process got there first; the rename below settles it
                pass
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # Another process finished first: use its folder if it is what was asked for.
            done = existing()
            if done is None:
                raise
            return done
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindcv_shufflenet.data.digits",
                                     description="Write scikit-learn's handwritten digits as an image folder "
                                                 "(OUT/train/<digit>/*.png, OUT/val/<digit>/*.png).")
    parser.add_argument("--out", required=True, help="folder to create")
    parser.add_argument("--val_fraction", "--val-fraction", type=float, default=0.2,
                        help="share of each class that goes to val (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--upscale", type=int, default=4, help="enlarge the 8x8 images this many times (default 4)")
    args = parser.parse_args(argv)
    try:
        counts = write_digits_imagefolder(args.out, args.val_fraction, args.seed, args.upscale)
    except (ValueError, FileExistsError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {counts['train']} train and {counts['val']} val images in {counts['num_classes']} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
