"""The datasets of an ImageNet-style folder (``root/<split>/<class>/<image>``): training batches whose data for an
epoch depends only on (seed, epoch, shard) (:func:`create_train_dataset`), and MindCV's evaluation batches
(:func:`create_eval_dataset`)."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mindspore.dataset as ds

from ..constants import CROP_PCT, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, INTERPOLATION
from .batch_augment import BatchAugment
from .checks import check_int, check_shards
from .folders import ImageListing, ScanShare, list_images, skipped_summary, split_folder
from .sampling import EpochsSampler, pipeline_seed, set_dataset_seed, train_sample_indices
from .transforms import check_augment, check_mean_std, eval_transforms, train_transforms
from .workers import resolve_workers

logger = logging.getLogger(__name__)


def _image_folder_dataset(listing: ImageListing, indices: Sequence[int] | ds.Sampler,
                          workers: int) -> ds.ImageFolderDataset:
    """ImageFolderDataset reading ``indices`` (positions in its sorted class-then-file order, or a sampler of
    them) in that order.

    A file that passed :func:`unreadable_reason` but still fails to decode (corrupt inside) does not stop the
    epoch: MindSpore replaces its row (image and label) with one decoded before (ErrorSamplesMode.REPLACE), so
    batch counts stay; the replacement was measured to repeat run to run on CPU, with 1 and 2 workers."""
    ds.config.set_error_samples_mode(ds.config.ErrorSamplesMode.REPLACE)
    sampler = indices if isinstance(indices, ds.Sampler) else ds.SubsetSampler([int(i) for i in indices])
    dataset = ds.ImageFolderDataset(str(listing.folder), sampler=sampler,
                                    num_parallel_workers=workers, extensions=listing.extensions,
                                    class_indexing={name: i for i, name in enumerate(listing.classes)})
    return dataset


def _check_image_count(listing: ImageListing, workers: int) -> None:
    """MindSpore lists the folder as this module did (once per listing: a run's later epochs reuse it)."""
    seen = _COUNTED.get(id(listing))
    if seen is not None and seen() is listing:
        return
    found = ds.ImageFolderDataset(str(listing.folder), shuffle=False, num_parallel_workers=workers,
                                  extensions=listing.extensions,
                                  class_indexing={name: i for i, name in enumerate(listing.classes)}).get_dataset_size()
    if found != listing.num_images:  # would shift every sample index: refuse rather than train on the wrong images
        raise RuntimeError(f"MindSpore's ImageFolderDataset sees {found} images in {listing.folder}, "
                           f"this module counted {listing.num_images}")
    _COUNTED[id(listing)] = weakref.ref(listing)


_COUNTED: Dict[int, weakref.ref[ImageListing]] = {}  # listings already counted (by id: they are unhashable)


def _share(shard_id: int, num_shards: int, all_reduce: Optional[Callable]) -> Optional[ScanShare]:
    return ScanShare(shard_id, num_shards, all_reduce) if all_reduce is not None and num_shards > 1 else None


def _check_num_classes(listing: ImageListing, num_classes: Optional[int], option: str) -> int:
    if num_classes is None:
        return len(listing.classes)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if len(listing.classes) > num_classes:
        raise ValueError(f"{listing.folder} has {len(listing.classes)} class folders but the model has "
                         f"num_classes={num_classes}: wrong --data_dir/{option}, or set --num_classes "
                         f"{len(listing.classes)}")
    return num_classes


def create_eval_dataset(data_dir: str, split: str = "val", batch_size: int = 64, image_size: int = IMAGE_SIZE,
                        crop_pct: float = CROP_PCT, interpolation: str = INTERPOLATION,
                        num_parallel_workers: Optional[int] = None,
                        num_classes: Optional[int] = None, *, num_shards: int = 1, shard_id: int = 0,
                        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                        channel_order: str = "RGB",
                        warn: Optional[Callable[[str], None]] = logger.warning,
                        scan_all_reduce: Optional[Callable] = None) -> ds.Dataset:
    """Batches of (image float32 [B, 3, H, W], label int32) from ``data_dir/split`` (``split=""``:
    ``data_dir`` itself), in file order, last batch kept. Labels are the class folders' indices in
    sorted order, as in MindCV and torchvision; ``num_classes`` is checked against their number.
    With ``num_shards > 1`` shard ``shard_id`` gets images ``shard_id::num_shards`` of the file order, without
    padding, so shards can differ by one image: sum the counts over shards for exact metrics.
    Files that cannot be decoded are left out (and counted in one ``warn`` message, logged by default; None:
    silent). Under data parallel, ``scan_all_reduce`` (a sum over ranks) splits that check of the files
    between the ranks.
    Preprocessing: :func:`eval_transforms` with ``image_size`` ... ``channel_order``."""
    folder = split_folder(data_dir, split, "val_split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_shards(num_shards, shard_id)
    mean, std = check_mean_std(mean, std)
    listing = list_images(folder, require_every_class=False, share=_share(shard_id, num_shards, scan_all_reduce))
    _check_num_classes(listing, num_classes, "--val_split")
    workers = resolve_workers(num_parallel_workers)
    _check_image_count(listing, workers)
    if listing.skipped and warn is not None:
        warn(skipped_summary(listing.skipped, folder))
    dataset = _image_folder_dataset(listing, listing.readable[shard_id::num_shards], workers)
    dataset = dataset.map(operations=eval_transforms(image_size, crop_pct, interpolation, mean, std, channel_order),
                          input_columns="image", num_parallel_workers=workers)
    return dataset.batch(batch_size, drop_remainder=False)


@dataclass
class TrainData:
    """One epoch of one shard's training data.

    ``dataset`` yields (image float32 [B, 3, H, W], label): int32 [B], or with ``soft_labels`` float32
    [B, num_classes] mixup/cutmix targets that already include label smoothing (the loss must not smooth them
    again). MindSpore reads the data seed when an iterator is created: create it right away, or call
    :meth:`reseed` (or use :meth:`iterator`) just before, if anything may have called ``ds.config.set_seed`` or
    ``mindspore.set_seed`` in between. Build a new TrainData for each epoch."""

    dataset: ds.Dataset
    num_classes: int
    classes: List[str]
    steps_per_epoch: int
    images_per_epoch: int
    soft_labels: bool
    seed: int  # the data pipeline seed, derived from (seed, epoch, shard_id)
    folder: Path = Path()
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason): files left out, every epoch

    def reseed(self) -> None:
        """Set the data pipeline seed again (the next iterator created then sees this epoch's augmentations)."""
        set_dataset_seed(self.seed)

    def iterator(self, output_numpy: bool = False) -> Any:
        """A one-pass tuple iterator over (image, label) batches, seeded for this epoch."""
        self.reseed()
        return self.dataset.create_tuple_iterator(num_epochs=1, output_numpy=output_numpy)


def create_train_dataset(data_dir: str, split: str = "train", *, batch_size: int, image_size: int = IMAGE_SIZE,
                         epoch: int = 0, seed: int = 42, num_shards: int = 1, shard_id: int = 0,
                         shuffle: bool = True, drop_remainder: bool = True, num_samples: Optional[int] = None,
                         aug_repeats: int = 0, num_classes: Optional[int] = None,
                         num_parallel_workers: Optional[int] = None, num_epochs: int = 1,
                         batches_per_epoch: Optional[int] = None,
                         scan_all_reduce: Optional[Callable] = None, **augment: Any) -> TrainData:
    """The training batches of epoch ``epoch`` for shard ``shard_id`` of ``data_dir/split`` (``split=""``:
    ``data_dir`` itself), with MindCV's augmentation keys (``AUGMENT_DEFAULTS``; see :func:`auto_augment_op`).

    The images read and their augmentations depend only on (seed, epoch, shard_id) and the worker count, not on
    what ran before in the process: a run resumed at epoch e sees the data the uninterrupted run saw. Sample
    order: :func:`train_sample_indices`; every shard runs ``steps_per_epoch`` steps. ``mixup`` / ``cutmix`` are
    Beta alphas (0: off); ``cutmix_prob`` is the probability that a batch is mixed at all (MindCV passes it as
    timm's ``prob``), and with both alphas > 0 each mixed batch uses cutmix or mixup with probability 0.5.
    Files that cannot be decoded are left out of every epoch alike (``TrainData.skipped``; see
    :func:`unreadable_reason`); under data parallel, ``scan_all_reduce`` (a sum over ranks) splits that check
    between the ranks. ``num_epochs > 1`` makes one dataset of epochs ``epoch, epoch + 1, ...`` one after the
    other (for dataset sinking; whole batches only), each in its own order; ``steps_per_epoch`` stays one
    epoch's, and the augmentations follow one random stream seeded by (seed, ``epoch``, shard_id).
    ``batches_per_epoch`` cuts each epoch to that many batches: those the training
    loop uses (whole accumulation windows), so that no leftover batch slides into the next epoch."""
    check_int("batch_size", batch_size, 1)
    check_int("image_size", image_size, 1)
    check_int("epoch", epoch, 0)
    check_int("seed", seed, 0)
    check_shards(num_shards, shard_id)
    check_int("aug_repeats", aug_repeats, 0)
    if num_samples is not None:
        check_int("num_samples", num_samples, 1)
    a = check_augment(augment)
    ops = train_transforms(image_size, **augment)

    check_int("num_epochs", num_epochs, 1)
    if num_epochs > 1 and not drop_remainder:
        raise ValueError("num_epochs > 1 needs drop_remainder=True: an epoch's smaller last batch would fall "
                         "in the middle of the stream")
    listing = list_images(split_folder(data_dir, split, "train_split"), require_every_class=True,
                          share=_share(shard_id, num_shards, scan_all_reduce))
    classes_out = _check_num_classes(listing, num_classes, "--train_split")
    workers = resolve_workers(num_parallel_workers)
    _check_image_count(listing, workers)
    # Sample positions among the readable images, mapped to ImageFolderDataset's positions.
    indices = listing.readable[train_sample_indices(len(listing.readable), epoch=epoch, seed=seed,
                                                    num_shards=num_shards, shard_id=shard_id, shuffle=shuffle,
                                                    num_samples=num_samples, aug_repeats=aug_repeats)]
    steps = len(indices) // batch_size if drop_remainder else -(-len(indices) // batch_size)
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is more than the {len(indices)} images each shard reads per epoch "
                         f"from {listing.folder}: lower batch_size or set drop_remainder=False")
    if batches_per_epoch is not None and batches_per_epoch < steps:
        check_int("batches_per_epoch", batches_per_epoch, 1)
        steps = batches_per_epoch
        indices = indices[:steps * batch_size]
    soft_labels = a["mixup"] > 0 or a["cutmix"] > 0

    data_seed = pipeline_seed(seed, epoch, shard_id)
    set_dataset_seed(data_seed)
    if num_epochs > 1:
        sample_options = dict(seed=seed, num_shards=num_shards, shard_id=shard_id, shuffle=shuffle,
                              num_samples=num_samples, aug_repeats=aug_repeats)
        indices = EpochsSampler(listing.readable, first_epoch=epoch, num_epochs=num_epochs,
                                per_epoch=steps * batch_size, **sample_options)
    dataset = _image_folder_dataset(listing, indices, workers)
    dataset = dataset.map(operations=ops, input_columns="image", num_parallel_workers=workers)
    if soft_labels or a["re_prob"] > 0:
        batch_augment = BatchAugment(data_seed, classes_out, a, soft_labels)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers,
                                per_batch_map=batch_augment, input_columns=["image", "label"])
    else:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_workers=workers)
    return TrainData(dataset=dataset, num_classes=classes_out, classes=listing.classes, steps_per_epoch=steps,
                     images_per_epoch=steps * batch_size if drop_remainder else len(indices),
                     soft_labels=soft_labels, seed=data_seed, folder=listing.folder,
                     skipped=list(listing.skipped))
