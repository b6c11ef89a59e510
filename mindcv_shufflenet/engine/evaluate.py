"""Top-1 / top-5 accuracy and cross-entropy of a classifier over a dataset."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from mindspore import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    top1: float  # percent of all images (an image with non-finite logits counts as wrong)
    top5: float  # percent (top-k with k = min(5, classes))
    loss: float  # mean cross-entropy over the images with finite logits (NaN if there are none)
    images: int
    seconds: float  # the whole run, including graph compilation in the first batch
    images_per_second: float  # after the first batch (over the whole run if there is only one)
    nonfinite: int = 0  # images whose logits hold NaN or Inf (float16 overflow under amp O2/O3)


def nonfinite_note(nonfinite: int, images: int, correct1: int) -> str:
    """The one line that reports images with non-finite logits: how many, how they were counted, what to do."""
    finite = images - nonfinite
    among = f"; top-1 over the other {finite}: {100 * correct1 / finite:.2f}%" if finite else ""
    return (f"warning: {nonfinite} of {images} images gave non-finite logits (NaN/Inf): they count as wrong in "
            f"top-1/top-5 and are left out of the loss{among}. With val_amp_level O2/O3 this is float16 overflow: "
            f"on the CPU evaluate in float32 (val_amp_level O0)")


def to_numpy(value: Any) -> np.ndarray:
    """A network's output as a NumPy array (a MindSpore Tensor, or already an array from an exported model)."""
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def evaluate(net: nn.Cell, dataset, log_every: int = 0,
             all_reduce: Optional[Callable[[np.ndarray], np.ndarray]] = None,
             log: Callable[[str], None] = logger.info) -> EvalResult:
    """Run ``net`` in inference mode over ``dataset`` (batches of image, label). ``net`` is a network, or
    anything called like one (``deploy.ExportedModel``: an exported ONNX / MindIR file).

    Under data parallel each rank evaluates its own shard and ``all_reduce`` sums the counts, so the
    result covers the whole set exactly once.
    """
    net.set_train(False)
    correct1 = correct5 = images = nonfinite = 0
    loss_sum = 0.0
    start = time.perf_counter()
    first_batch_end, first_batch_images = start, 0
    total_batches = dataset.get_dataset_size()
    for step, (image, label) in enumerate(dataset.create_tuple_iterator(num_epochs=1), start=1):
        logits = to_numpy(net(image)).astype(np.float64)
        labels = label.asnumpy()
        images += len(labels)
        finite = np.isfinite(logits).all(axis=1)
        if not finite.all():  # left out of the sums (and so counted as wrong): no NaN in the loss, no warnings
            nonfinite += int((~finite).sum())
            logits, labels = logits[finite], labels[finite]
        k = min(5, logits.shape[1])
        topk = np.argsort(-logits, axis=1)[:, :k]
        correct1 += int((topk[:, 0] == labels).sum())
        correct5 += int((topk == labels[:, None]).any(axis=1).sum())
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss_sum += float(-log_probs[np.arange(len(labels)), labels].sum())
        if step == 1:
            first_batch_end, first_batch_images = time.perf_counter(), images
        if log_every and step % log_every == 0:
            elapsed = time.perf_counter() - start
            log(f"  val batch {step}/{total_batches}: {images} images, top-1 {100 * correct1 / images:.2f}%, "
                f"{images / elapsed:.1f} img/s")
    if all_reduce is not None:
        correct1, correct5, images, nonfinite = (int(round(v)) for v in all_reduce(
            np.array([correct1, correct5, images, nonfinite], np.float64)))
        loss_sum = float(all_reduce(np.array([loss_sum], np.float64))[0])
    if images == 0:
        raise ValueError("the dataset yielded no images")
    end = time.perf_counter()
    if images > first_batch_images:
        throughput = (images - first_batch_images) / (end - first_batch_end)
    else:
        throughput = images / (end - start)
    if nonfinite:
        log(nonfinite_note(nonfinite, images, correct1))
    finite_images = images - nonfinite
    loss = loss_sum / finite_images if finite_images else float("nan")
    return EvalResult(100 * correct1 / images, 100 * correct5 / images, loss, images, end - start, throughput,
                      nonfinite)
