"""Per-batch augmentation: random erasing, mixup / cutmix and soft labels, drawn from a generator keyed by the
batch so that the result does not depend on worker scheduling.

``vision.RandomErasing`` is a Python op drawing from the global ``random`` module: with more than one worker
its draws interleave between threads and differ from run to run, hence random erasing is done here too.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import numpy as np


class BatchAugment:
    """Per-batch random erasing (MindSpore's RandomErasing semantics), mixup / cutmix (MindCV's Mixup: timm's
    'batch' mode, switch_prob 0.5, lambda corrected for the clipped box) and soft labels, drawing from a
    generator keyed by (pipeline seed, pass, batch index) so that worker scheduling cannot change the result."""

    def __init__(self, seed: int, num_classes: int, a: Dict[str, Any], soft_labels: bool):
        self.seed, self.num_classes, self.soft_labels = seed, num_classes, soft_labels
        self.re_prob, self.re_scale, self.re_ratio = a["re_prob"], a["re_scale"], a["re_ratio"]
        self.re_value, self.re_max_attempts = a["re_value"], a["re_max_attempts"]
        self.mixup, self.cutmix, self.mix_prob = a["mixup"], a["cutmix"], a["cutmix_prob"]
        self.smoothing = a["label_smoothing"]

    def __call__(self, images: List[np.ndarray], labels: List[np.ndarray], info: Any) -> Tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, info.get_epoch_num(), info.get_batch_num()])
        x = np.stack(images).astype(np.float32, copy=False)
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        if self.re_prob > 0:
            for image in x:
                self._erase(image, rng)
        if not self.soft_labels:
            return x, y.astype(np.int32)
        lam = self._mix(x, rng)
        off = self.smoothing / self.num_classes
        target = np.full((len(y), self.num_classes), off, dtype=np.float64)
        target[np.arange(len(y)), y] = 1.0 - self.smoothing + off
        return x, (lam * target + (1.0 - lam) * target[::-1]).astype(np.float32)

    def _erase(self, image: np.ndarray, rng: np.random.Generator) -> None:
        if not rng.random() < self.re_prob:
            return
        channels, height, width = image.shape
        for _ in range(self.re_max_attempts):
            area = rng.uniform(*self.re_scale) * height * width
            aspect = rng.uniform(*self.re_ratio)
            w = int(round(math.sqrt(area * aspect)))
            h = int(round(w / aspect))
            if h < height and w < width:
                top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                if isinstance(self.re_value, str):  # 'random': per-pixel normal noise
                    value = rng.standard_normal((channels, h, w), dtype=np.float32)
                else:
                    value = self.re_value
                image[:, top:top + h, left:left + w] = value
                return

    def _mix(self, x: np.ndarray, rng: np.random.Generator) -> float:
        """Mix ``x`` in place with its reversed batch; return the weight of the original labels."""
        lam, use_cutmix = 1.0, False
        if rng.random() < self.mix_prob:
            if self.mixup > 0 and self.cutmix > 0:
                use_cutmix = bool(rng.random() < 0.5)
                alpha = self.cutmix if use_cutmix else self.mixup
            elif self.mixup > 0:
                alpha = self.mixup
            else:
                use_cutmix, alpha = True, self.cutmix
            lam = float(rng.beta(alpha, alpha))
        if lam == 1.0:
            return lam
        flipped = x[::-1].copy()
        if use_cutmix:
            height, width = x.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            cut_h, cut_w = int(height * cut), int(width * cut)
            cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
            top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
            left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
            x[:, :, top:bottom, left:right] = flipped[:, :, top:bottom, left:right]
            return 1.0 - float((bottom - top) * (right - left)) / (height * width)
        x *= lam
        x += flipped * (1.0 - lam)
        return lam
