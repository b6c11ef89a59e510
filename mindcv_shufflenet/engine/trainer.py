"""The training run: build everything from a Config, train epoch by epoch, validate, checkpoint, resume.

Determinism is a design rule here: the data of epoch ``e`` depends only on (seed, e, rank), and every
piece of state the step keeps is in the checkpoint, so a run resumed from the checkpoint of epoch ``e``
continues exactly as the uninterrupted run did (bit for bit on CPU).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from .. import runtime
from ..config import Config, ConfigError, save_config
from ..data.imagefolder import (create_eval_dataset, create_train_dataset, find_classes, skipped_summary,
                               split_folder)
from ..models.registry import create_model
from .checkpoint import CheckpointManager, ResumeState, load_training_state, remove_partial_files
from .distributed import average_batchnorm_statistics, make_all_reduce, parameters_agree
from .evaluate import EvalResult, evaluate
from .loss import create_loss
from .metrics import MetricsFile, try_plot_metrics
from .optim import create_optimizer
from .schedules import build_lr_schedule
from .train_step import TrainStep, ema_state, swap_in


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


class Console:
    """Rank 0 prints and appends to ``train.log``; other ranks stay quiet."""

    def __init__(self, enabled: bool, log_path: Optional[Path]) -> None:
        self.enabled = enabled
        self.log_path = log_path

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        print(line, flush=True)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(line + "\n")


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# Testing aid: "RANK:STEP" makes that rank fail at that global step (1-based), as a rank meeting bad input would,
# to check what a user sees when one rank of an msrun job dies. Unset in normal runs.
FAIL_ENV = "MINDCV_SHUFFLENET_TEST_FAIL"


def _injected_failure(rank: int, global_step: int) -> None:
    spec = os.environ.get(FAIL_ENV)
    if spec and spec == f"{rank}:{global_step}":
        raise TrainingError(f"injected failure at step {global_step} ({FAIL_ENV}={spec})")


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"ckpt_save_dir {folder} is not writable ({err.strerror}): choose another "
                          f"--ckpt_save_dir") from None


def _augment_options(cfg: Config) -> dict:
    return dict(scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, vflip=cfg.vflip,
                color_jitter=cfg.color_jitter, interpolation=cfg.interpolation, auto_augment=cfg.auto_augment,
                re_prob=cfg.re_prob, re_scale=cfg.re_scale, re_ratio=cfg.re_ratio, re_value=cfg.re_value,
                re_max_attempts=cfg.re_max_attempts, mean=cfg.mean, std=cfg.std, mixup=cfg.mixup,
                cutmix=cfg.cutmix, cutmix_prob=cfg.cutmix_prob, label_smoothing=cfg.label_smoothing)


def train(cfg: Config, log_to_stdout: bool = True) -> TrainResult:
    """Run (or resume) the training described by ``cfg``; see train.py for the command line."""
    device = runtime.resolve_device(cfg.device_target)
    jit_level = cfg.jit_level or ("O2" if device == "Ascend" else None)
    runtime.init_runtime(device=device, mode=cfg.mode, jit_level=jit_level, num_threads=cfg.num_threads,
                         seed=cfg.seed)
    dist = runtime.init_distributed() if cfg.distribute else runtime.DistInfo(0, 1)
    run_dir = Path(cfg.ckpt_save_dir)
    if dist.is_main:
        _check_writable(run_dir)
    console = Console(dist.is_main and log_to_stdout, run_dir / "train.log" if dist.is_main else None)
    if cfg.dataset_sink_mode and device != "Ascend":
        console(f"note: dataset_sink_mode is an Ascend feature; on {device} batches are fed step by step")
    sink = cfg.dataset_sink_mode and device == "Ascend"

    # Files named in the configuration are checked before the (possibly long) scan of the data.
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {cfg.ckpt_path} (--ckpt_path)")
    if cfg.resume and cfg.resume != "auto" and not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint not found: {cfg.resume}")

    # --- data -------------------------------------------------------------------------------------
    classes = find_classes(split_folder(cfg.data_dir, cfg.train_split, "train_split"))
    num_classes = cfg.num_classes or len(classes)
    if cfg.val_while_train:
        split_folder(cfg.data_dir, cfg.val_split, "val_split")  # before the training data is scanned

    def train_data(epoch: int):
        return create_train_dataset(
            cfg.data_dir, cfg.train_split, batch_size=cfg.batch_size, image_size=cfg.image_resize, epoch=epoch,
            seed=cfg.seed, num_shards=dist.group_size, shard_id=dist.rank, shuffle=cfg.shuffle,
            drop_remainder=cfg.drop_remainder, num_samples=cfg.num_samples, aug_repeats=cfg.aug_repeats,
            num_classes=num_classes, num_parallel_workers=cfg.num_parallel_workers, **_augment_options(cfg))

    first = train_data(0)
    if first.skipped:
        console(f"warning: {skipped_summary(first.skipped, first.folder)} (all listed in {run_dir}/skipped_files.txt)")
        if dist.is_main:
            (run_dir / "skipped_files.txt").write_text("".join(f"{path}\t{reason}\n" for path, reason in first.skipped))
    steps_per_epoch = first.steps_per_epoch
    if steps_per_epoch < 1:
        raise ConfigError(f"{cfg.data_dir}/{cfg.train_split}: {first.images_per_epoch} images per shard give no "
                          f"full batch of {cfg.batch_size}: lower batch_size or set drop_remainder: false")
    accumulation = cfg.gradient_accumulation_steps
    updates_per_epoch = steps_per_epoch // accumulation
    if updates_per_epoch < 1:
        raise ConfigError(f"gradient_accumulation_steps={accumulation} exceeds the {steps_per_epoch} steps of "
                          f"an epoch")
    eval_data = None
    if cfg.val_while_train:
        eval_data = create_eval_dataset(cfg.data_dir, cfg.val_split, cfg.batch_size, cfg.image_resize,
                                        cfg.crop_pct, cfg.interpolation, cfg.num_parallel_workers, num_classes,
                                        num_shards=dist.group_size, shard_id=dist.rank, mean=cfg.mean,
                                        std=cfg.std, warn=lambda message: console(f"warning: {message}"))

    # --- model, optimizer, step ---------------------------------------------------------------------
    model_kwargs = {"pool_padding": cfg.pool_padding} if cfg.pool_padding else {}
    if cfg.drop_rate:
        model_kwargs["drop_rate"] = cfg.drop_rate
    init_ckpt = cfg.ckpt_path if (cfg.ckpt_path and not cfg.resume_opt) else None
    network = create_model(cfg.model, num_classes=num_classes, in_channels=cfg.in_channels,
                           pretrained=cfg.pretrained, checkpoint_path=init_ckpt,
                           finetune=bool(init_ckpt), **model_kwargs)
    if cfg.amp_level != "O0":
        ms.amp.auto_mixed_precision(network, cfg.amp_level)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lr_table = build_lr_schedule(
            cfg.scheduler, cfg.lr, cfg.epoch_size, updates_per_epoch, min_lr=cfg.min_lr,
            warmup_epochs=cfg.warmup_epochs, warmup_factor=cfg.warmup_factor, decay_epochs=cfg.decay_epochs,
            decay_rate=cfg.decay_rate, multi_step_decay_milestones=cfg.multi_step_decay_milestones,
            lr_epoch_stair=cfg.lr_epoch_stair, num_cycles=cfg.num_cycles, cycle_decay=cfg.cycle_decay)
    for warning in caught:  # schedule notes, printed once (rank 0) instead of as Python warnings per rank
        console(f"note: {warning.message}")
    optimizer = create_optimizer(network, cfg.opt, lr_table, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                 weight_decay_filter=cfg.weight_decay_filter, use_nesterov=cfg.use_nesterov,
                                 eps=cfg.eps)
    loss_fn = create_loss(cfg.loss, label_smoothing=0.0 if first.soft_labels else cfg.label_smoothing)
    reducer = None
    if dist.distributed:
        reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=dist.group_size)
    step_cell = TrainStep(network, loss_fn, optimizer, loss_scale=cfg.loss_scale,
                          dynamic_loss_scale=cfg.loss_scale_type == "dynamic",
                          clip_grad_norm=cfg.clip_value if cfg.clip_grad else None,
                          ema_decay=cfg.ema_decay if cfg.ema else None, accumulation_steps=accumulation,
                          gradient_reducer=reducer)
    step_cell.set_train(True)

    # --- resume -------------------------------------------------------------------------------------
    manager = CheckpointManager(run_dir, cfg.model, cfg.keep_checkpoint_max, cfg.ckpt_save_policy)
    if dist.is_main:
        for name in remove_partial_files(run_dir):
            console(f"removed {name}, a file an interrupted save left behind")
    resume_path = _resume_path(cfg, manager, console)
    state = ResumeState("", 0, 0, -1.0, -1)
    if resume_path:
        state = load_training_state(step_cell, resume_path)
        expected_step = state.epoch * updates_per_epoch
        if state.global_step != expected_step:
            raise ConfigError(f"{resume_path} was written after {state.global_step} updates ({state.epoch} epochs), "
                              f"but this configuration makes {updates_per_epoch} updates per epoch: resume with "
                              f"the batch_size, data and gradient_accumulation_steps that wrote it")
        console(f"resumed from {resume_path}: {state.epoch} of {cfg.epoch_size} epochs done")
    if state.epoch >= cfg.epoch_size:
        console(f"nothing to do: {state.epoch} epochs done, epoch_size is {cfg.epoch_size}")

    all_reduce = make_all_reduce() if dist.distributed else None
    metrics = MetricsFile(run_dir / "metrics.jsonl", resume_epoch=state.epoch if resume_path else None) \
        if dist.is_main else None
    if dist.is_main:
        save_config(cfg, run_dir / "config.yaml")
        (run_dir / "classes.txt").write_text("".join(c + "\n" for c in classes))

    world_batch = cfg.batch_size * dist.group_size
    console(f"{cfg.model}: {num_classes} classes, {first.images_per_epoch * dist.group_size} training images, "
            f"{steps_per_epoch} steps of {cfg.batch_size} x {dist.group_size} device(s) per epoch, {device} "
            f"{cfg.mode} mode, amp {cfg.amp_level}, {cfg.opt} lr {cfg.lr} ({cfg.scheduler}), output {run_dir}")

    best_top1, best_epoch = state.best_top1, state.best_epoch
    last_loss, last_eval = math.nan, None
    bad_steps = 0
    first_step_reported = False
    run_start = time.perf_counter()
    epochs_run = 0
    for epoch in range(state.epoch + 1, cfg.epoch_size + 1):
        data = first if epoch == 1 else train_data(epoch - 1)
        epoch_start = time.perf_counter()
        window_loss, window_loss_n, window_steps, window_wait = 0.0, 0, 0, 0.0
        window_start = time.perf_counter()
        epoch_loss_sum, epoch_loss_count, skipped = 0.0, 0, 0
        # Ascend with sinking runs `chunk` steps per call on the device; elsewhere one step per call.
        chunk = _sink_chunk(steps_per_epoch, cfg.log_interval) if sink else 1
        if sink:
            data.reseed()
        run_chunk = _sink_runner(step_cell, data.dataset, chunk, jit_level) if sink else None
        iterator = None if sink else data.iterator()
        for step in range(chunk, steps_per_epoch + 1, chunk):
            _injected_failure(dist.rank, (epoch - 1) * steps_per_epoch + step)
            wait_start = time.perf_counter()
            if sink:
                loss, finite, scale = run_chunk()
                wait = 0.0
            else:
                image, label = next(iterator)
                wait = time.perf_counter() - wait_start
                loss, finite, scale = step_cell(image, label)
            loss_value = float(loss.asnumpy())
            finite_value = bool(finite.asnumpy())
            step_time = time.perf_counter() - wait_start
            if not first_step_reported:
                console(f"first step (graph compile and run): {step_time:.1f} s")
                first_step_reported = True
                window_start = time.perf_counter()  # keep the compile out of the speed figures
            else:
                window_wait += wait
                window_steps += chunk
            if math.isfinite(loss_value):
                window_loss += loss_value * chunk
                window_loss_n += chunk
                epoch_loss_sum += loss_value * chunk
                epoch_loss_count += chunk
            if finite_value and math.isfinite(loss_value):
                bad_steps = 0
            else:
                bad_steps += chunk
                skipped += chunk
                if bad_steps >= cfg.max_bad_steps:
                    raise TrainingError(
                        f"{bad_steps} consecutive steps with non-finite loss or gradients (epoch {epoch}, step "
                        f"{step}, loss {loss_value}): no update was applied; lower lr, enable clip_grad, or use "
                        f"loss_scale_type: dynamic. Checkpoints up to epoch {epoch - 1} are intact")
            if cfg.log_interval and (step % cfg.log_interval < chunk or step == steps_per_epoch) and window_steps:
                elapsed = time.perf_counter() - window_start
                ms_per_step = 1000 * elapsed / window_steps
                global_step = (epoch - 1) * steps_per_epoch + step
                remaining = (cfg.epoch_size * steps_per_epoch - global_step) * elapsed / window_steps
                lr_now = float(lr_table[min(len(lr_table) - 1, ((global_step - 1) // accumulation))])
                mean_loss = window_loss / window_loss_n if window_loss_n else loss_value
                scale_note = f" | loss scale {float(scale.asnumpy()):g}" if cfg.loss_scale_type == "dynamic" else ""
                console(f"epoch {epoch}/{cfg.epoch_size} step {step}/{steps_per_epoch} | loss {mean_loss:.4f} | "
                        f"lr {lr_now:.6f} | {ms_per_step:.1f} ms/step | {world_batch * 1000 / ms_per_step:.1f} img/s"
                        f" | data wait {100 * window_wait / elapsed:.1f}%{scale_note} | eta {_format_eta(remaining)}")
                window_loss, window_loss_n, window_steps, window_wait = 0.0, 0, 0, 0.0
                window_start = time.perf_counter()
        train_seconds = time.perf_counter() - epoch_start
        last_loss = epoch_loss_sum / epoch_loss_count if epoch_loss_count else math.nan
        if all_reduce is not None:
            average_batchnorm_statistics(network, all_reduce, dist.group_size)
            if not parameters_agree(network, all_reduce, dist.group_size):
                raise TrainingError(f"rank {dist.rank}: parameters differ between ranks after epoch {epoch}; the "
                                    f"gradient all-reduce is not in effect")
            if epoch == state.epoch + 1:
                console(f"parameters identical on all {dist.group_size} ranks after epoch {epoch}")
            sums = all_reduce(np.array([epoch_loss_sum, epoch_loss_count], np.float64))
            last_loss = float(sums[0] / sums[1]) if sums[1] else math.nan

        record: Dict[str, object] = {"epoch": epoch, "train_loss": last_loss,
                                     "lr": float(lr_table[epoch * updates_per_epoch - 1]),
                                     "train_seconds": round(train_seconds, 3), "skipped_steps": skipped}
        eval_line = ""
        validate_now = eval_data is not None and (epoch % cfg.val_interval == 0 or epoch == cfg.epoch_size)
        if validate_now:
            last_eval = _validate(network, step_cell, eval_data, cfg, all_reduce, console)
            record.update(val_top1=last_eval.top1, val_top5=last_eval.top5, val_loss=last_eval.loss,
                          val_seconds=round(last_eval.seconds, 3))
            eval_line = (f" | val top-1 {last_eval.top1:.2f}% top-5 {last_eval.top5:.2f}% loss {last_eval.loss:.4f} "
                         f"({last_eval.seconds:.1f} s{', EMA weights' if cfg.ema else ''})")
            if last_eval.top1 > best_top1:
                best_top1, best_epoch = last_eval.top1, epoch
                if dist.is_main:
                    _save_best(manager, network, step_cell, cfg, epoch, last_eval, num_classes)
        if dist.is_main:
            # The record first: a resume from the epoch before drops it again, so after a kill at any moment
            # metrics.jsonl holds exactly the epochs of the checkpoint resumed from.
            metrics.append(record)
            if epoch % cfg.ckpt_save_interval == 0 or epoch == cfg.epoch_size:
                manager.save_epoch(step_cell, network, epoch, steps_per_epoch,
                                   {"best_top1": best_top1, "best_epoch": best_epoch},
                                   top1=last_eval.top1 if validate_now else None)
        best_note = f" | best {best_top1:.2f}% (epoch {best_epoch})" if best_epoch > 0 else ""
        if skipped:
            best_note += f" | {skipped} step(s) skipped: non-finite gradients"
        console(f"epoch {epoch}/{cfg.epoch_size} done in {train_seconds:.1f} s | train loss {last_loss:.4f}"
                f"{eval_line}{best_note}")
        epochs_run += 1

    files: Dict[str, Path] = {"config": run_dir / "config.yaml", "metrics": run_dir / "metrics.jsonl",
                              "log": run_dir / "train.log", "last": manager.last_path}
    if best_epoch > 0:
        files["best"] = manager.best_path
    if dist.is_main and cfg.plot and (run_dir / "metrics.jsonl").exists() and MetricsFile.read(run_dir / "metrics.jsonl"):
        plot = try_plot_metrics(run_dir / "metrics.jsonl", run_dir / "curves.png", title=cfg.model, log=console)
        if plot is not None:  # else a warning said why; the run itself has succeeded
            files["plot"] = plot
    if epochs_run:
        console(f"finished {epochs_run} epoch(s) in {_format_eta(time.perf_counter() - run_start)}"
                + (f"; best top-1 {best_top1:.2f}% at epoch {best_epoch} -> {manager.best_path}" if best_epoch > 0 else "")
                + f"; last checkpoint {manager.last_path}")
    return TrainResult(epochs_run, max(state.epoch, cfg.epoch_size if epochs_run else state.epoch), last_loss,
                       best_top1, best_epoch, last_eval, run_dir, files)


def _sink_chunk(steps_per_epoch: int, log_interval: int) -> int:
    """Steps per device call when sinking: the largest divisor of the epoch not above log_interval."""
    limit = max(1, min(log_interval or steps_per_epoch, steps_per_epoch))
    return max(d for d in range(1, limit + 1) if steps_per_epoch % d == 0)


def _sink_runner(step_cell: TrainStep, dataset, chunk: int, jit_level: Optional[str]):
    """Ascend only: ``ms.data_sink`` feeds the step from the device queue, ``chunk`` steps per call."""
    return ms.data_sink(step_cell, dataset, sink_size=chunk, jit_config=ms.JitConfig(jit_level=jit_level or "O2"))


def _resume_path(cfg: Config, manager: CheckpointManager, console: Callable[[str], None]) -> Optional[str]:
    if cfg.ckpt_path and cfg.resume_opt:
        return cfg.ckpt_path
    if not cfg.resume:
        return None
    if cfg.resume == "auto":  # last.ckpt, or the newest intact epoch file when it is damaged
        from .checkpoint import find_resume_checkpoint

        return find_resume_checkpoint(manager.folder, manager.model_name, console)
    if not Path(cfg.resume).is_file():
        raise FileNotFoundError(f"resume: checkpoint not found: {cfg.resume}")
    return cfg.resume


def _validate(network: nn.Cell, step_cell: TrainStep, eval_data, cfg: Config, all_reduce,
              console: Callable[[str], None]) -> EvalResult:
    """Evaluate the EMA weights when EMA is on (they are what best.ckpt holds), else the raw ones."""
    saved = swap_in(network, ema_state(step_cell)) if cfg.ema else {}
    try:
        result = evaluate(network, eval_data, log_every=max(1, eval_data.get_dataset_size() // 4)
                          if eval_data.get_dataset_size() >= 200 else 0, all_reduce=all_reduce, log=console)
    finally:
        network.set_train(True)
        if saved:
            swap_in(network, saved)
    return result


def _save_best(manager: CheckpointManager, network: nn.Cell, step_cell: TrainStep, cfg: Config, epoch: int,
               result: EvalResult, num_classes: int) -> None:
    ema = ema_state(step_cell) if cfg.ema else {}
    entries = [{"name": p.name, "data": Tensor(ema[p.name]) if p.name in ema else p}
               for p in network.get_parameters()]
    manager.save_best(entries, {"epoch": epoch, "top1": result.top1, "top5": result.top5})
