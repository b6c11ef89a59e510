"""The training run: :func:`build_run` builds everything from a Config once, :func:`train_one_epoch` trains
an epoch, :func:`end_epoch` validates, checkpoints and records it; :func:`train` strings them together.

Determinism is a design rule here: the data of epoch ``e`` depends only on (seed, e, rank), and every
piece of state the step keeps is in the checkpoint, so a run resumed from the checkpoint of epoch ``e``
continues exactly as the uninterrupted run did (bit for bit on CPU, without dataset sinking).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from .. import compile_cache, npu, runtime
from ..config import Config, ConfigError, save_config
from ..data.datasets import TrainData, create_eval_dataset, create_train_dataset
from ..data.folders import find_classes, skipped_summary, split_folder
from ..models.factory import create_model
from ..models.weights import checkpoint_record
from . import faults, synthetic
from .checkpoint import (
    CheckpointManager,
    ResumeState,
    find_resume_checkpoint,
    load_training_state,
    remove_partial_files,
)
from .distributed import average_batchnorm_statistics, make_all_reduce, parameters_agree
from .evaluate import EvalResult, evaluate
from .feed import FedSteps, SunkSteps, chunk_plan
from .loss import auxiliary_weights, create_loss
from .meter import Console, EpochStats, StepMeter, format_eta
from .metrics import MetricsFile, try_plot_metrics
from .optim import create_optimizer
from .schedules import build_lr_schedule
from .train_step import StepStatsReader, TrainStep, ema_state, swap_in
from .training_data import TrainingData

# MindSpore 2.10's documented levels are O0 and O1 (O2, the GE backend, is deprecated since 2.9); O0 is its
# default for training on Ascend. MindCV's published figures were trained with MindSpore 2.3.1 at O2.
ASCEND_JIT_LEVEL = "O0"


class TrainingError(runtime.RunError):
    """The run cannot go on (for example, gradients stayed non-finite); the message says why."""


@dataclass
class TrainResult:
    epochs_run: int  # in this process (after a resume: the remaining ones)
    final_epoch: int
    last_train_loss: float
    best_top1: float  # -1 when never validated
    best_epoch: int
    last_eval: Optional[EvalResult]
    run_dir: Path
    files: Dict[str, Path] = field(default_factory=dict)


@dataclass
class Run:
    """Everything a training run holds between epochs."""
    cfg: Config
    dist: runtime.DistInfo
    device: str
    jit_level: Optional[str]
    console: Console
    run_dir: Path
    data: TrainingData
    network: nn.Cell
    eval_network: nn.Cell  # the network itself, or a copy at val_amp_level
    step_cell: TrainStep
    lr_table: np.ndarray
    manager: CheckpointManager
    state: ResumeState
    metrics: Optional[MetricsFile]
    all_reduce: Optional[Callable[[np.ndarray], np.ndarray]]
    meter: StepMeter
    overflow_steps: FrozenSet[int] = frozenset()
    record: Dict[str, str] = field(default_factory=dict)  # what every checkpoint of the run records
    sunk: Optional[SunkSteps] = None
    stats_reader: Optional[StepStatsReader] = None
    best_top1: float = -1.0
    best_epoch: int = -1
    last_eval: Optional[EvalResult] = None

    @property
    def sink(self) -> bool:
        return self.sunk is not None


# ----------------------------------------------------------------------------------------------- building

def build_run(cfg: Config, log_to_stdout: bool = True) -> Run:
    """Set up the process and build the data, model, step and checkpoint manager; restore a resumed state."""
    device, jit_level, dist = _init_process(cfg)
    run_dir = Path(cfg.ckpt_save_dir)
    if dist.is_main:
        _check_writable(run_dir)
    console = Console(dist.is_main and log_to_stdout, run_dir / "train.log" if dist.is_main else None)
    sink = cfg.dataset_sink_mode and npu.ascend_path(device)
    if cfg.dataset_sink_mode and not sink:
        console(f"note: dataset_sink_mode is an Ascend feature; on {device} batches are fed step by step")
    if device == "CPU" and npu.standin_chip():
        console(f"note: {npu.STANDIN_ENV}={npu.standin_chip()}: the Ascend path on the CPU, with stand-ins for "
                f"the NPU-only operations (a testing aid)")
    if jit_level == "O2":
        console("note: jit_level O2 (the GE backend) is deprecated in MindSpore 2.10; O0 and O1 are its levels")
    _check_named_files(cfg)
    all_reduce = make_all_reduce() if dist.distributed else None
    data = _build_data(cfg, dist, console, run_dir, all_reduce)
    overflow_steps = faults.overflow_steps(dist.rank)
    if overflow_steps and sink:
        raise ConfigError(f"{faults.OVERFLOW_ENV} needs batches fed step by step: set dataset_sink_mode: False")
    network, eval_network = _build_networks(cfg, data.num_classes)
    lr_table = _build_schedule(cfg, data.updates_per_epoch, console)
    step_cell = _build_step(cfg, dist, network, lr_table, data, inject_overflow=bool(overflow_steps))
    if not sink:  # a sunk step is compiled by data_sink, at the same level
        runtime.apply_jit_level(step_cell)
    runtime.apply_jit_level(eval_network)  # validation compiles the network on its own
    manager = CheckpointManager(run_dir, cfg.model, cfg.keep_checkpoint_max, cfg.ckpt_save_policy)
    if dist.is_main:
        for name in remove_partial_files(run_dir):
            console(f"removed {name}, a file an interrupted save left behind")
    state = _restore(cfg, step_cell, manager, data.updates_per_epoch, console)
    if all_reduce is not None and (cfg.resume or (cfg.ckpt_path and cfg.resume_opt)):
        _check_ranks_resume_together(state, dist, step_cell, all_reduce, run_dir)
    metrics = None
    if dist.is_main:
        metrics = MetricsFile(run_dir / "metrics.jsonl", resume_epoch=state.epoch if state.path else None)
        save_config(cfg, run_dir / "config.yaml")
        (run_dir / "classes.txt").write_text("".join(c + "\n" for c in data.classes))
    run = Run(cfg, dist, device, jit_level, console, run_dir, data, network, eval_network, step_cell, lr_table,
              manager, state, metrics, all_reduce,
              StepMeter(cfg.batch_size * dist.group_size), overflow_steps,
              best_top1=state.best_top1, best_epoch=state.best_epoch)
    run.record = _checkpoint_record(cfg, network, data.classes)
    run.stats_reader = StepStatsReader(step_cell)
    if sink and state.epoch < cfg.epoch_size:
        run.sunk = _build_sink(run)
    console(f"{cfg.model}: {data.num_classes} classes, {data.first.images_per_epoch * dist.group_size} training "
            f"images, {data.steps_per_epoch} steps of {cfg.batch_size} x {dist.group_size} device(s) per epoch, "
            f"{device} {cfg.mode} mode, amp {cfg.amp_level}, {cfg.opt} lr {cfg.lr} ({cfg.scheduler}), output {run_dir}")
    compile_cache.prepare_train_step(run)
    return run


def _init_process(cfg: Config):
    device = runtime.resolve_device(cfg.device_target)
    jit_level = cfg.jit_level or (ASCEND_JIT_LEVEL if npu.ascend_path(device) else None)
    runtime.init_runtime(device=device, mode=cfg.mode, jit_level=jit_level, num_threads=cfg.num_threads,
                         seed=cfg.seed, deterministic=cfg.deterministic)
    dist = runtime.init_distributed() if cfg.distribute else runtime.DistInfo(0, 1)
    return device, jit_level, dist


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"ckpt_save_dir {folder} is not writable ({err.strerror}): choose another "
                          f"--ckpt_save_dir") from None


def _check_named_files(cfg: Config) -> None:
    """Files named in the configuration are checked before the (possibly long) scan of the data."""
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {cfg.ckpt_path} (--ckpt_path)")
    if cfg.resume and cfg.resume != "auto" and not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint not found: {cfg.resume}")


def _augment_options(cfg: Config) -> dict:
    return dict(scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, vflip=cfg.vflip,
                color_jitter=cfg.color_jitter, interpolation=cfg.interpolation, auto_augment=cfg.auto_augment,
                re_prob=cfg.re_prob, re_scale=cfg.re_scale, re_ratio=cfg.re_ratio, re_value=cfg.re_value,
                re_max_attempts=cfg.re_max_attempts, mean=cfg.mean, std=cfg.std, mixup=cfg.mixup,
                cutmix=cfg.cutmix, cutmix_prob=cfg.cutmix_prob, label_smoothing=cfg.label_smoothing)


def _train_dataset_options(cfg: Config, dist: runtime.DistInfo, num_classes: int,
                           scan_all_reduce: Optional[Callable] = None) -> dict:
    return dict(scan_all_reduce=scan_all_reduce, batch_size=cfg.batch_size, image_size=cfg.image_resize,
                seed=cfg.seed, num_shards=dist.group_size, shard_id=dist.rank, shuffle=cfg.shuffle,
                drop_remainder=cfg.drop_remainder,
                num_samples=cfg.num_samples, aug_repeats=cfg.aug_repeats, num_classes=num_classes,
                num_parallel_workers=cfg.num_parallel_workers, **_augment_options(cfg))


def _build_data(cfg: Config, dist: runtime.DistInfo, console: Console, run_dir: Path,
                all_reduce: Optional[Callable]) -> TrainingData:
    """List the data once (under msrun each rank checks its share of the files), and build epoch 1."""
    if cfg.synthetic_data:
        return synthetic.training_data(cfg, dist, console)
    classes = find_classes(split_folder(cfg.data_dir, cfg.train_split, "train_split"))
    num_classes = cfg.num_classes or len(classes)
    if cfg.val_while_train:
        split_folder(cfg.data_dir, cfg.val_split, "val_split")  # before the training data is scanned
    options = _train_dataset_options(cfg, dist, num_classes, all_reduce)

    def epoch_data(epoch: int) -> TrainData:
        return create_train_dataset(cfg.data_dir, cfg.train_split, epoch=epoch, **options)

    first = epoch_data(0)
    if first.skipped:
        console(f"warning: {skipped_summary(first.skipped, first.folder)} (all listed in {run_dir}/skipped_files.txt)")
        if dist.is_main:
            (run_dir / "skipped_files.txt").write_text("".join(f"{path}\t{reason}\n" for path, reason in first.skipped))
    if first.steps_per_epoch < 1:
        raise ConfigError(f"{cfg.data_dir}/{cfg.train_split}: {first.images_per_epoch} images per shard give no "
                          f"full batch of {cfg.batch_size}: lower batch_size or set drop_remainder: false")
    accumulation = cfg.gradient_accumulation_steps
    updates_per_epoch = first.steps_per_epoch // accumulation
    if updates_per_epoch < 1:
        raise ConfigError(f"gradient_accumulation_steps={accumulation} exceeds the {first.steps_per_epoch} steps of "
                          f"an epoch")
    if first.steps_per_epoch % accumulation:
        # Every epoch is a whole number of updates, so checkpoints and the LR schedule stay on update boundaries.
        console(f"note: the last {first.steps_per_epoch % accumulation} batch(es) of each epoch are not used: "
                f"{first.steps_per_epoch} is not a multiple of gradient_accumulation_steps={accumulation}")
    eval_data = None
    if cfg.val_while_train:
        eval_data = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize,
                                        cfg.crop_pct, cfg.interpolation, cfg.num_parallel_workers, num_classes,
                                        num_shards=dist.group_size, shard_id=dist.rank, mean=cfg.mean,
                                        std=cfg.std, warn=lambda message: console(f"warning: {message}"),
                                        scan_all_reduce=all_reduce)
    return TrainingData(classes, num_classes, first, epoch_data, updates_per_epoch * accumulation,
                        updates_per_epoch, eval_data)


def _build_networks(cfg: Config, num_classes: int):
    """The network to train, and the one to validate: itself, or a copy cast to ``val_amp_level``."""
    model_kwargs = {"pool_padding": cfg.pool_padding} if cfg.pool_padding else {}
    if cfg.drop_rate:
        model_kwargs["drop_rate"] = cfg.drop_rate
    init_ckpt = cfg.ckpt_path if (cfg.ckpt_path and not cfg.resume_opt) else None
    network = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels,
                           pretrained=cfg.pretrained, checkpoint_path=init_ckpt,
                           finetune=bool(init_ckpt), **model_kwargs)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(network, cfg.amp_level)
    if cfg.val_amp_level == cfg.amp_level:
        return network, network
    # Weights are copied in before each validation (see _validate), so the copy is built without any.
    eval_network = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels, **model_kwargs)
    if cfg.val_amp_level != "O0":
        ms.amp.auto_mixed_precision(eval_network, cfg.val_amp_level)
    return network, eval_network


def _build_schedule(cfg: Config, updates_per_epoch: int, console: Console) -> np.ndarray:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lr_table = build_lr_schedule(
            cfg.scheduler, cfg.lr, cfg.epoch_size, updates_per_epoch, min_lr=cfg.min_lr,
            warmup_epochs=cfg.warmup_epochs, warmup_factor=cfg.warmup_factor, decay_epochs=cfg.decay_epochs,
            decay_rate=cfg.decay_rate, multi_step_decay_milestones=cfg.multi_step_decay_milestones,
            lr_epoch_stair=cfg.lr_epoch_stair, num_cycles=cfg.num_cycles, cycle_decay=cfg.cycle_decay)
    for warning in caught:  # schedule notes, printed once (rank 0) instead of as Python warnings per rank
        console(f"note: {warning.message}")
    return lr_table


def _build_step(cfg: Config, dist: runtime.DistInfo, network: nn.Cell, lr_table: np.ndarray, data: TrainingData,
                inject_overflow: bool) -> TrainStep:
    optimizer = create_optimizer(network, cfg.opt, lr_table, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                 weight_decay_filter=cfg.weight_decay_filter, use_nesterov=cfg.use_nesterov,
                                 eps=cfg.eps)
    loss_fn = create_loss(cfg.loss, label_smoothing=0.0 if data.first.soft_labels else cfg.label_smoothing,
                          aux_weights=_aux_weights(cfg, network))
    reducer = None
    if dist.distributed:
        reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=dist.group_size)
    step_cell = TrainStep(network, loss_fn, optimizer, loss_scale=cfg.loss_scale,
                          dynamic_loss_scale=cfg.loss_scale_type == "dynamic",
                          clip_grad_norm=cfg.clip_value if cfg.clip_grad else None,
                          ema_decay=cfg.ema_decay if cfg.ema else None,
                          accumulation_steps=cfg.gradient_accumulation_steps, gradient_reducer=reducer,
                          inject_overflow=inject_overflow)
    step_cell.set_train(True)
    return step_cell


def _aux_weights(cfg: Config, network: nn.Cell) -> Optional[Tuple[float, ...]]:
    """Each auxiliary head's loss weight (``aux_factor``), or None for a network without auxiliary heads."""
    heads = getattr(network, "aux_heads", None)
    try:
        weights = auxiliary_weights(cfg.aux_factor, len(heads) if heads is not None else 0, cfg.model)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return weights if heads is not None else None


def _restore(cfg: Config, step_cell: TrainStep, manager: CheckpointManager, updates_per_epoch: int,
             console: Console) -> ResumeState:
    """Load the checkpoint to resume from, if any, and check that it fits this configuration."""
    resume_path = _resume_path(cfg, manager, console)
    if not resume_path:
        return ResumeState("", 0, 0, -1.0, -1)
    state = load_training_state(step_cell, resume_path)
    expected = state.epoch * updates_per_epoch
    if state.global_step != expected:
        if state.counts_skipped or state.global_step > expected:
            raise ConfigError(f"{resume_path} was written after {state.global_step} update steps ({state.epoch} "
                              f"epochs), but this configuration makes {updates_per_epoch} per epoch: resume with "
                              f"the batch_size, data and gradient_accumulation_steps that wrote it")
        # Written before skipped updates advanced the schedule: its global_step counts applied updates only.
        console(f"note: {resume_path} predates the count of skipped updates: {expected - state.global_step} of its "
                f"{expected} update steps were not applied; the learning-rate schedule continues at epoch "
                f"{state.epoch + 1}")
        step_cell.optimizer.global_step.set_data(Tensor([expected], ms.int32))
        step_cell.skipped_updates.set_data(Tensor(expected - state.global_step, ms.int32))
        state.global_step = expected
    console(f"resumed from {resume_path}: {state.epoch} of {cfg.epoch_size} epochs done")
    if state.epoch >= cfg.epoch_size:
        console(f"nothing to do: {state.epoch} epochs done, epoch_size is {cfg.epoch_size}")
    return state


def _check_ranks_resume_together(state: ResumeState, dist: runtime.DistInfo, step_cell: TrainStep,
                                 all_reduce: Callable[[np.ndarray], np.ndarray], run_dir: Path) -> None:
    """Every rank reads ckpt_save_dir on its own node: a node that cannot see node 0's checkpoints would start
    from elsewhere (and fail an epoch later on parameters that differ). Refuse at once, on every rank."""
    epochs = np.zeros(dist.group_size)
    epochs[dist.rank] = state.epoch
    epochs = all_reduce(epochs)
    same = bool(np.all(epochs == epochs[0])) and parameters_agree(step_cell, all_reduce, dist.group_size)
    if all_reduce(np.array([0.0 if same else 1.0]))[0] == 0:
        return
    read = state.path or f"no checkpoint in {run_dir}"
    raise ConfigError(f"the ranks do not resume from the same checkpoint (epochs done per rank: "
                      f"{[int(e) for e in epochs]}; rank {dist.rank} read {read}): every node must see node 0's "
                      f"ckpt_save_dir at the same path (a shared filesystem, or a copy of node 0's folder)")


def _resume_path(cfg: Config, manager: CheckpointManager, console: Callable[[str], None]) -> Optional[str]:
    if cfg.ckpt_path and cfg.resume_opt:
        return cfg.ckpt_path
    if not cfg.resume:
        return None
    if cfg.resume == "auto":  # last.ckpt, or the newest intact epoch file when it is damaged
        return find_resume_checkpoint(manager.folder, manager.model_name, console)
    if not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint not found: {cfg.resume}")
    return cfg.resume


def _checkpoint_record(cfg: Config, network: nn.Cell, classes: list) -> Dict[str, str]:
    """The model, its options, the class names and the evaluation preprocessing of this run, recorded in its
    checkpoints so that validate.py, infer.py and export.py see images as the network was trained to."""
    preprocessing = {"input_size": cfg.image_resize, "crop_pct": cfg.crop_pct, "interpolation": cfg.interpolation,
                     "channel_order": "RGB", "mean": list(cfg.mean), "std": list(cfg.std)}
    names = classes if len(classes) == network.num_classes else None
    return checkpoint_record(network, cfg.model, class_names=names, extra={"preprocessing": preprocessing})


def _build_sink(run: Run) -> SunkSteps:
    """Ascend: one dataset over the remaining epochs, sunk once for the whole run."""
    cfg, dist = run.cfg, run.dist
    # Each epoch holds the batches the loop uses (whole accumulation windows), so no leftover batch slides
    # into the next epoch: an epoch's data stays a function of (seed, epoch, rank).
    data = create_train_dataset(cfg.data_dir, cfg.train_split, epoch=run.state.epoch,
                                num_epochs=cfg.epoch_size - run.state.epoch,
                                batches_per_epoch=run.data.steps_per_epoch,
                                **_train_dataset_options(cfg, dist, run.data.num_classes))
    data.reseed()
    return SunkSteps(run.step_cell, data.dataset, run.jit_level)


# ----------------------------------------------------------------------------------------------- training

def train_one_epoch(run: Run, epoch: int) -> EpochStats:
    """Train epoch ``epoch`` (1-based); log every ``log_interval`` steps; return the epoch's statistics."""
    cfg, steps = run.cfg, run.data.steps_per_epoch
    stats = EpochStats()
    start = time.perf_counter()
    first_global = (epoch - 1) * steps
    if run.sink:
        feeder = run.sunk
    else:
        data = run.data.first if epoch == 1 else run.data.epoch_data(epoch - 1)
        feeder = FedSteps(run.step_cell, data.iterator(), lambda k: _before_step(run, first_global + k))
    done = 0
    # Fed steps are read one by one (a stop after max_bad_steps comes at that step); sunk ones per chunk.
    read_every = cfg.log_interval if run.sink else 1
    for chunk in chunk_plan(steps, read_every, first_step_alone=not run.meter.compiled):
        if run.sink:
            for k in range(done + 1, done + chunk + 1):
                faults.fail_if_asked(run.dist.rank, first_global + k)
        wait = feeder.run(chunk)
        done += chunk
        step_stats = run.stats_reader.read()
        stats.add(step_stats)
        first_seconds = run.meter.add(chunk, step_stats, wait)
        if first_seconds is not None:
            run.console(f"first step (graph compile and run): {first_seconds:.1f} s")
        if step_stats.peak_streak >= cfg.max_bad_steps:
            raise TrainingError(
                f"{step_stats.peak_streak} consecutive steps with non-finite loss or gradients (epoch {epoch}, step "
                f"{done}): no update was applied; lower lr, enable clip_grad, or use loss_scale_type: dynamic. "
                f"Checkpoints up to epoch {epoch - 1} are intact")
        if cfg.log_interval and (done % cfg.log_interval == 0 or done == steps):
            _log_progress(run, epoch, done)
    stats.seconds = time.perf_counter() - start
    return stats


def _before_step(run: Run, global_step: int) -> None:
    """Testing aids (see :mod:`.faults`): fail here, or make this rank report overflow at this step."""
    faults.fail_if_asked(run.dist.rank, global_step)
    if run.overflow_steps:
        run.step_cell.step_stats_inject.set_data(Tensor(int(global_step in run.overflow_steps), ms.int32))


def _log_progress(run: Run, epoch: int, done: int) -> None:
    cfg, steps = run.cfg, run.data.steps_per_epoch
    global_step = (epoch - 1) * steps + done
    lr = float(run.lr_table[min(len(run.lr_table) - 1, (global_step - 1) // cfg.gradient_accumulation_steps)])
    scale_note = ""
    if cfg.loss_scale_type == "dynamic":
        scale_note = f" | loss scale {float(run.step_cell.scale_sense.asnumpy()):g}"
    line = run.meter.line(f"epoch {epoch}/{cfg.epoch_size} step {done}/{steps}", lr,
                          cfg.epoch_size * steps - global_step, scale_note)
    if line:
        run.console(line)


# ----------------------------------------------------------------------------------------------- end of epoch

def end_epoch(run: Run, epoch: int, stats: EpochStats) -> float:
    """Synchronise ranks, validate, save the checkpoints and the metrics record; print the epoch line.

    Returns the epoch's training loss (the mean over all ranks).
    """
    cfg = run.cfg
    train_loss = _synchronise_ranks(run, epoch, stats)
    record: Dict[str, object] = {"epoch": epoch, "train_loss": train_loss,
                                 "lr": float(run.lr_table[epoch * run.data.updates_per_epoch - 1]),
                                 "train_seconds": round(stats.seconds, 3), "skipped_steps": stats.skipped}
    eval_line = ""
    validate_now = run.data.eval_data is not None and (epoch % cfg.val_interval == 0 or epoch == cfg.epoch_size)
    if validate_now:
        result = run.last_eval = _validate(run)
        record.update(val_top1=result.top1, val_top5=result.top5, val_loss=result.loss,
                      val_seconds=round(result.seconds, 3))
        eval_line = (f" | val top-1 {result.top1:.2f}% top-5 {result.top5:.2f}% loss {result.loss:.4f} "
                     f"({result.seconds:.1f} s{', EMA weights' if cfg.ema else ''})")
        if result.top1 > run.best_top1:
            run.best_top1, run.best_epoch = result.top1, epoch
            if run.dist.is_main:
                _save_best(run, epoch, result)
    if run.dist.is_main:
        # The record first: a resume from the epoch before drops it again, so after a kill at any moment
        # metrics.jsonl holds exactly the epochs of the checkpoint resumed from.
        run.metrics.append(record)
        if epoch % cfg.ckpt_save_interval == 0 or epoch == cfg.epoch_size:
            run.manager.save_epoch(run.step_cell, run.network, epoch, run.data.steps_per_epoch,
                                   {**run.record, "best_top1": run.best_top1, "best_epoch": run.best_epoch},
                                   top1=run.last_eval.top1 if validate_now else None)
    best_note = f" | best {run.best_top1:.2f}% (epoch {run.best_epoch})" if run.best_epoch > 0 else ""
    if stats.skipped:
        best_note += f" | {stats.skipped} step(s) skipped: non-finite gradients"
    run.console(f"epoch {epoch}/{cfg.epoch_size} done in {stats.seconds:.1f} s | train loss {train_loss:.4f}"
                f"{eval_line}{best_note}")
    return train_loss


def _synchronise_ranks(run: Run, epoch: int, stats: EpochStats) -> float:
    """Under msrun: average BatchNorm statistics (EMA copies too), check that all ranks hold one model, and
    return the loss averaged over ranks. Standalone: the epoch's mean loss."""
    if run.all_reduce is None:
        return stats.mean_loss
    group_size = run.dist.group_size
    average_batchnorm_statistics(run.step_cell, run.all_reduce, group_size)
    if not parameters_agree(run.step_cell, run.all_reduce, group_size):
        raise TrainingError(f"rank {run.dist.rank}: parameters differ between ranks after epoch {epoch}; the "
                            f"gradient all-reduce is not in effect")
    if epoch == run.state.epoch + 1:
        run.console(f"parameters identical on all {group_size} ranks after epoch {epoch}")
    sums = run.all_reduce(np.array([stats.loss_sum, stats.loss_count], np.float64))
    return float(sums[0] / sums[1]) if sums[1] else math.nan


def _validate(run: Run) -> EvalResult:
    """Evaluate the EMA weights when EMA is on (they are what best.ckpt holds), else the raw ones, with the
    network at ``val_amp_level``."""
    cfg, network, eval_network = run.cfg, run.network, run.eval_network
    weights = ema_state(run.step_cell) if cfg.ema else {}
    if eval_network is not network:
        weights = {**{p.name: p.asnumpy() for p in network.get_parameters()}, **weights}
    saved = swap_in(eval_network, weights) if weights else {}
    eval_data = run.data.eval_data
    batches = eval_data.get_dataset_size()
    try:
        return evaluate(eval_network, eval_data, log_every=max(1, batches // 4) if batches >= 200 else 0,
                        all_reduce=run.all_reduce, log=run.console)
    finally:
        network.set_train(True)
        if saved and eval_network is network:
            swap_in(network, saved)


def _save_best(run: Run, epoch: int, result: EvalResult) -> None:
    ema = ema_state(run.step_cell) if run.cfg.ema else {}
    entries = [{"name": p.name, "data": Tensor(ema[p.name]) if p.name in ema else p}
               for p in run.network.get_parameters()]
    run.manager.save_best(entries, {**run.record, "epoch": epoch, "top1": result.top1, "top5": result.top5})


# ----------------------------------------------------------------------------------------------- the run

def train(cfg: Config, log_to_stdout: bool = True) -> TrainResult:
    """Run (or resume) the training described by ``cfg``; see train.py for the command line."""
    run = build_run(cfg, log_to_stdout)
    start = time.perf_counter()
    epochs_run, last_loss = 0, math.nan
    for epoch in range(run.state.epoch + 1, cfg.epoch_size + 1):
        stats = train_one_epoch(run, epoch)
        last_loss = end_epoch(run, epoch, stats)
        epochs_run += 1
    files = _finish(run, epochs_run, time.perf_counter() - start)
    final_epoch = max(run.state.epoch, cfg.epoch_size if epochs_run else run.state.epoch)
    return TrainResult(epochs_run, final_epoch, last_loss, run.best_top1, run.best_epoch, run.last_eval,
                       run.run_dir, files)


def _finish(run: Run, epochs_run: int, seconds: float) -> Dict[str, Path]:
    """The closing plot and line; the run's files."""
    run_dir, manager = run.run_dir, run.manager
    files: Dict[str, Path] = {"config": run_dir / "config.yaml", "metrics": run_dir / "metrics.jsonl",
                              "log": run_dir / "train.log", "last": manager.last_path}
    if run.best_epoch > 0:
        files["best"] = manager.best_path
    metrics_path = run_dir / "metrics.jsonl"
    if run.dist.is_main and run.cfg.plot and metrics_path.exists() and MetricsFile.read(metrics_path):
        plot = try_plot_metrics(metrics_path, run_dir / "curves.png", title=run.cfg.model, log=run.console)
        if plot is not None:  # else a warning said why; the run itself has succeeded
            files["plot"] = plot
    if epochs_run:
        best = (f"; best top-1 {run.best_top1:.2f}% at epoch {run.best_epoch} -> {manager.best_path}"
                if run.best_epoch > 0 else "")
        run.console(f"finished {epochs_run} epoch(s) in {format_eta(seconds)}{best}; last checkpoint "
                    f"{manager.last_path}")
    return files
