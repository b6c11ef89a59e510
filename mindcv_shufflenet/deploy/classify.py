"""Classifying image files: finding them, preprocessing them as validation does, naming the classes.

Class names, in order of precedence: a file or dataset folder the caller names; the names recorded in
the checkpoint (``save_checkpoint(..., class_names=...)``); a ``classes.txt`` (one name per line) in the
checkpoint's folder; ImageNet's for a 1000-class model; otherwise ``class <index>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    from mindspore import nn

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
CLASSES_FILE = "classes.txt"
IMAGENET_CLASSES_FILE = Path(__file__).parents[1] / "imagenet_classes.txt"


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet-1k class names in label order (the sorted WordNet ids, as in MindCV, torchvision
    and ``validate.py``'s folders), shipped with the package (``imagenet_classes.txt``: torchvision's
    wording, from ``torchvision.models._meta``, BSD-3-Clause)."""
    names = IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise ValueError(f"{IMAGENET_CLASSES_FILE} holds {len(names)} names, not 1000: the package is damaged")
    return names


def read_class_names(source: str | os.PathLike) -> List[str]:
    """Class names from a text file (one per line) or from a dataset folder (its sorted subfolders, the
    order ``validate.py`` and training give the labels)."""
    path = Path(source)
    if path.is_dir():
        names = sorted(entry.name for entry in path.iterdir() if entry.is_dir())
        if not names:
            raise ValueError(f"{path} has no class folders to take class names from")
        return names
    if not path.is_file():
        raise FileNotFoundError(f"class names not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or not all(names):
        raise ValueError(f"{path} must list one class name per line, without blank lines")
    return names


def write_class_names(folder: str | os.PathLike, names: Sequence[str]) -> Path:
    """Write ``classes.txt`` into ``folder`` (e.g. beside the checkpoints of a training run)."""
    path = Path(folder) / CLASSES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return path


def resolve_class_names(num_classes: int, class_names: Optional[str | os.PathLike] = None,
                        recorded: Optional[Sequence[str]] = None,
                        checkpoint_path: Optional[str | os.PathLike] = None,
                        recorded_origin: str = "the checkpoint") -> Tuple[List[str], str]:
    """The names of a ``num_classes``-way classifier and where they came from (see the module doc).
    ``recorded`` are the names the model's file records (``recorded_origin`` says which file that is);
    ``checkpoint_path`` is the file (checkpoint or exported model) beside which ``classes.txt`` is looked for.

    Raises:
        ValueError: if the chosen names are not ``num_classes`` many.
    """
    candidates = []
    if class_names:
        candidates.append((lambda: read_class_names(class_names), str(class_names)))
    elif recorded:
        candidates.append((lambda: list(recorded), recorded_origin))
    elif checkpoint_path and (Path(checkpoint_path).parent / CLASSES_FILE).is_file():
        beside = Path(checkpoint_path).parent / CLASSES_FILE
        candidates.append((lambda: read_class_names(beside), str(beside)))
    elif num_classes == 1000:
        candidates.append((imagenet_class_names, "ImageNet"))
    for read, origin in candidates:
        names = read()
        if len(names) != num_classes:
            raise ValueError(f"{origin} lists {len(names)} class names, but the model has {num_classes} classes")
        return names, origin
    return [f"class {i}" for i in range(num_classes)], "class indices (no class names given)"


def find_images(paths: Sequence[str | os.PathLike]) -> List[Path]:
    """The image files named, and those under the folders named (recursively, by extension, sorted)."""
    found: List[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not inside:
                raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"image or folder not found: {path}")
    if not found:
        raise ValueError("no images given")
    return found


def load_image(path: Path, transforms: Sequence) -> np.ndarray:
    """One image through ``transforms`` (``data.transforms.eval_transforms``: decode, resize, crop,
    normalize, CHW), as float32."""
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        image = data
        for transform in transforms:
            image = transform(image)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"cannot read image {path}: {_pipeline_message(err)}") from None
    return np.asarray(image, dtype=np.float32)


def _pipeline_message(err: Exception) -> str:
    """The informative line of a MindSpore dataset error (``[ERROR] Decode: image decode failed.``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("[ERROR]"):
            return line[len("[ERROR]"):].strip()
    return lines[0] if lines else type(err).__name__


@dataclass(frozen=True)
class Prediction:
    path: Path
    indices: Tuple[int, ...]  # best first
    probabilities: Tuple[float, ...]
    embedding: Optional[np.ndarray] = None  # the pooled features (``forward_head(..., pre_logits=True)``), if asked


def logits_and_embeddings(net: nn.Cell) -> nn.Cell:
    """A cell that returns ``(logits, embeddings)`` of a classifier in one pass: the embeddings are the pooled
    features the classifier reads (``forward_head(forward_features(x), pre_logits=True)``, ``num_features``
    wide)."""
    from mindspore import nn

    class LogitsAndEmbeddings(nn.Cell):
        def __init__(self, classifier: nn.Cell) -> None:
            super().__init__(auto_prefix=False)
            self.net = classifier

        def construct(self, x):
            features = self.net.forward_features(x)
            return self.net.forward_head(features), self.net.forward_head(features, pre_logits=True)

    if not hasattr(net, "forward_head") or getattr(net, "features_only", False):
        raise ValueError("embeddings need a classifier network with forward_features / forward_head (not an exported "
                         "file or a features_only network)")
    return LogitsAndEmbeddings(net)


def save_embeddings(path: str | os.PathLike, embeddings: Sequence[np.ndarray]) -> Path:
    """Write the embeddings as one float32 [N, D] ``.npy`` file: under a temporary name, then renamed, so that
    an interrupted run leaves no half-written file."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, np.stack(embeddings).astype(np.float32))
    os.replace(partial, path)
    return path


def check_embeddings_path(path: str | os.PathLike) -> Path:
    """``path`` if embeddings can be written there (a ``.npy`` name in an existing folder); else a ValueError."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"--features writes a NumPy file: give it a name ending in .npy, got {path}")
    if not path.parent.is_dir():
        raise ValueError(f"--features: folder {path.parent} does not exist: create it or choose another path")
    return path


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in float64."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted.astype(np.float64))
    return e / e.sum(axis=1, keepdims=True)


def predict(net: nn.Cell, images: Sequence[Path], transforms: Sequence, batch_size: int = 16,
            top_k: int = 5, embeddings: bool = False) -> Iterator[Prediction]:
    """Top-``top_k`` classes and probabilities (softmax of the logits) for each image, batch by batch.
    ``net`` is a network or an exported model (:class:`~mindcv_shufflenet.deploy.ExportedModel`); with
    ``embeddings`` (a network only) each prediction carries the image's pooled features too
    (:func:`logits_and_embeddings`)."""
    import mindspore as ms

    from ..engine.evaluate import to_numpy

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    net.set_train(False)
    run = logits_and_embeddings(net) if embeddings else net
    for start in range(0, len(images), batch_size):
        batch = list(images[start:start + batch_size])
        x = np.stack([load_image(path, transforms) for path in batch])
        outputs = run(ms.Tensor(x))
        logits, pooled = (to_numpy(outputs[0]), to_numpy(outputs[1])) if embeddings else (to_numpy(outputs), None)
        probabilities = softmax(logits)
        k = min(top_k, probabilities.shape[1])
        best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        for i, (path, row, p) in enumerate(zip(batch, best, probabilities)):
            yield Prediction(path, tuple(int(j) for j in row), tuple(float(p[j]) for j in row),
                             None if pooled is None else pooled[i])
