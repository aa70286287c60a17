"""One pretraining loop for every method.

Optimizer (Adam, SGD, LARS) and schedule with warm-up; ``trainer.precision`` autocast
(bf16/fp16, GradScaler for fp16 on CUDA); gradient clipping; DistributedDataParallel
under torchrun with optional SyncBN; checkpoints every ``checkpoint_every`` steps and at the
end holding model (with queues and momentum targets), optimizer, scheduler, scaler, RNG
states and the step (the data position, see :class:`benchmark.data.datasets.PretrainStream`).
A NaN/inf loss stops the run with a clear message; the last good checkpoint stays.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark.bf16_conv_guard import guard_where_needed
from benchmark.cpu_share import CoreShare
from benchmark.checkpoint import (find_resumable, load_checkpoint, rng_state, save_checkpoint, set_rng_state)
from benchmark.data.datasets import PretrainStream
from benchmark.data.batch_augment import step_generator
from benchmark.distributed import DistInfo, mean_over_processes
from benchmark.errors import UserError, check_minimums, check_positive, unknown_choice
from benchmark.optim import LARS_TRUST, batch_norm_parameters, build_optimizer, build_scheduler, schedule_in_steps

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NOT_FINGERPRINTED = ("resume", "progress", "num_workers", "log_every", "checkpoint_every", "threads",
                     "adaptive_threads", "allocator")


class TrainingDiverged(UserError):
    pass


# A step whose gradients are not finite makes no update, as torch.amp.GradScaler skips such steps
# under fp16; up to this fraction of a run's steps, then the run stops as diverged. A run without
# such a step is unchanged to the bit.
MAX_SKIPPED_FRACTION = 0.05


def gradients_finite(model: torch.nn.Module) -> bool:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


# the least value each count or rate of the trainer can run with (trainer.steps: 1, with its own hint)
TRAINER_MINIMUMS = {"batch_size": 1, "checkpoint_every": 1, "log_every": 1, "warmup_steps": 0,
                    "decay_every": 0, "num_workers": 0, "weight_decay": 0.0, "grad_clip": 0.0}


def check_trainer_numbers(t) -> None:
    """Counts and rates the trainer cannot run with fail before any data is read, in one line that
    names the key, the value and the valid range (a negative ``trainer.steps`` would otherwise
    evaluate an untrained encoder under the method's name)."""
    if t.steps < 1:
        raise UserError(f"bad trainer.steps {t.steps}: must be >= 1 (method=random evaluates an untrained encoder)")
    check_minimums("trainer", t, TRAINER_MINIMUMS)
    if t.lars_trust not in LARS_TRUST:
        raise unknown_choice("trainer.lars_trust", t.lars_trust, LARS_TRUST)
    if t.bn_weight_decay is not None and t.bn_weight_decay < 0:
        raise UserError(f"bad trainer.bn_weight_decay {t.bn_weight_decay}: must be >= 0, or null for trainer.weight_decay")
    check_positive("trainer", t, ["lr"])
    if t.threads is not None and t.threads < 1:
        raise UserError(f"bad trainer.threads {t.threads}: must be >= 1, or null for torch's default")


@dataclass
class PretrainData:
    """What one pretraining run reads: the videos, the method's sampler and views, and the
    trainer's half of device-side augmentation (None: the workers augment)."""
    records: List
    sampler: Callable  # a sampler of benchmark.data.samplers: (frames, rng) -> each clip's indices; .clips
    view_fn: Callable
    on_device: Optional[Callable]


@dataclass
class PretrainResult:
    steps: int
    clips_seen: int
    seconds: float
    final_loss: Optional[float]
    checkpoint: Optional[str]
    threads: List[int]  # CPU thread counts the run used (trainer.adaptive_threads changes it with the load)
    skipped_steps: int = 0  # steps without an update: their gradients were not finite
    fp32_weight_gradients: List[str] = field(default_factory=list)  # convolutions benchmark.bf16_conv_guard fixed


@dataclass
class LoopResult:
    """What :func:`train_steps` returns."""
    last_loss: Optional[float]
    seconds: float
    threads: List[int]  # CPU thread counts used
    skipped_steps: int  # steps without an update (non-finite gradients)
    fp32_weight_gradients: List[str]  # convolutions whose bf16 weight gradient this CPU gets wrong


def autocast_for(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise unknown_choice("trainer.precision", precision, PRECISIONS)
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def fingerprint(cfg) -> str:
    trainer = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k not in NOT_FINGERPRINTED}
    parts = {"method": cfg.method, "encoder": cfg.encoder, "dataset": cfg.dataset, "trainer": trainer, "seed": cfg.seed}
    text = OmegaConf.to_yaml(OmegaConf.create(OmegaConf.to_container(OmegaConf.create(parts), resolve=True)))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class MetricsLog:
    """Metrics to ``metrics.csv`` and TensorBoard in the run folder (main process only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.csv"
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, step: int, values: Dict[str, float], prefix: str = "pretrain") -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["phase", "step", "key", "value"])
            for k, v in values.items():
                w.writerow([prefix, step, k, v])
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self):
        if self.writer:
            self.writer.close()


def resolve_resume(cfg, run_dir: Path, fp: str) -> Optional[Path]:
    choice = cfg.trainer.resume
    if choice in (None, "none", ""):
        return None
    if choice == "auto":
        own = run_dir / "checkpoints" / "last.pt"
        return own if own.exists() else find_resumable(Path(cfg.results_dir), fp, exclude=run_dir)
    path = Path(choice)
    if not path.exists():
        raise UserError(f"trainer.resume checkpoint not found: {path} (valid: none, auto, or a path)")
    return path


def apply_speed_levers(method: torch.nn.Module, channels_last: bool, compile: bool) -> None:
    """``trainer.channels_last`` (weights in the channels-last 3-D layout, which oneDNN and cuDNN
    convolve faster, and an encoder that has them converted to its channels-last CPU routes,
    :func:`encoders.channels_last_ops.convert_to_channels_last_routes`) and ``trainer.compile``
    (``torch.compile`` of ``method.encoder``, in place, so
    state_dict keys and checkpoints stay the same; with ``compile=False`` any module will do).
    Measured by ``python -m benchmark perf``. On CUDA it also turns on cuDNN's autotuner, which
    picks the fastest convolution algorithm once per shape (clip shapes are fixed in a run)."""
    if any(p.is_cuda for p in method.parameters()):
        torch.backends.cudnn.benchmark = True
    if channels_last:
        if any(getattr(m, "channels_last_routes", False) for m in method.modules()):
            from encoders.channels_last_ops import convert_to_channels_last_routes
            convert_to_channels_last_routes(method)
        with torch.no_grad():  # 3-D convolutions' weights (a 2-D convolution's have no 3-D layout)
            for t in [*method.parameters(), *method.buffers()]:
                if t.dim() == 5:
                    t.data = t.data.contiguous(memory_format=torch.channels_last_3d)
    if compile:
        method.encoder.compile()


def in_layout(views: List[torch.Tensor], channels_last: bool) -> List[torch.Tensor]:
    """The batch's clips in the layout the weights are in (see :func:`apply_speed_levers`)."""
    return [v.contiguous(memory_format=torch.channels_last_3d) for v in views] if channels_last else views


@dataclass
class LoopSettings:
    """How :func:`train_steps` runs: the ``trainer.*`` keys of pretraining, or a fine-tuning split's."""
    steps: int
    precision: str = "fp32"
    grad_clip: float = 0.0
    checkpoint_every: int = 50
    log_every: int = 10
    channels_last: bool = False
    num_workers: int = 0
    progress: bool = True
    desc: str = "train"
    adaptive_threads: bool = False
    threads: Optional[int] = None
    seed: int = 0  # device-side augmentation's draws (benchmark.data.batch_augment.step_generator)
    bf16_conv_check: bool = True  # CPU bf16: check each convolution's weight gradient first (benchmark.bf16_conv_guard)
    diverged_hint: str = "try a lower learning rate or precision fp32"


def new_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 on CUDA scales the loss (bf16 and fp32 need no scaling: the scaler is a no-op)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16" and device.type == "cuda"))


def resume_training(path: Path, model, opt, sched, scaler, what: str) -> Dict:
    """Model, optimizer, schedule, loss scale and every RNG from a checkpoint of :func:`train_steps`;
    its state (``step``: where to continue)."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    try:
        opt.load_state_dict(state["optimizer"])
    except ValueError as e:  # torch checks the parameter groups' number and sizes
        raise UserError(f"{path}: its optimizer state does not fit {what}'s parameter groups in this code ({e}); "
                        "resume it with the commit in its result.json") from e
    sched.load_state_dict(state["scheduler"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state


def training_state(model, opt, sched, scaler, step: int, **extra) -> Dict:
    """What a checkpoint holds to continue exactly: weights (with queues and momentum targets),
    optimizer, schedule, loss scale, every RNG and the step (the data position)."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(), "rng": rng_state(), "step": step, **extra}


def train_steps(model: torch.nn.Module, stream: PretrainStream, opt, sched, scaler, device: torch.device,
                s: LoopSettings, start: int = 0, hooks=None, on_device=None, clips_per_step: int = 1, rank: int = 0,
                show: bool = True, save: Optional[Callable[[int, Optional[float]], None]] = None,
                log_values: Optional[Callable[[int, Dict[str, float]], None]] = None, checkpoint_path: str = ""):
    """The one training loop, for pretraining and fine-tuning alike.

    Each batch of ``stream`` (``{"views": [...], "label", "step"}``) goes to ``model(views, labels)``
    under ``s.precision``'s autocast, which returns ``"loss"`` (and any scalars to log). A
    non-finite loss, averaged over processes, stops every process with a clear message. Then the
    scaled backward, ``hooks.before_optimizer_step``, clipping at ``s.grad_clip``, the step,
    the schedule and ``hooks.after_optimizer_step`` (momentum targets, queues). Every
    ``s.log_every`` steps ``log_values`` gets the scalars (and CPU threads are re-shared,
    :mod:`benchmark.cpu_share`); every ``s.checkpoint_every`` and at the end, ``save``.
    A step whose gradients are not finite is skipped (no update; :data:`MAX_SKIPPED_FRACTION`).
    Under bf16 on a CPU, before the first step, every convolution's weight gradient is checked
    against fp32 at the batch's shapes and computed in fp32 where this CPU gets it wrong
    (:mod:`benchmark.bf16_conv_guard`; ``s.bf16_conv_check``).
    """
    loader = DataLoader(stream, batch_size=None, num_workers=s.num_workers, persistent_workers=False,
                        prefetch_factor=4 if s.num_workers else None, pin_memory=device.type == "cuda")
    model.train()
    bar = tqdm(total=s.steps, initial=start, desc=s.desc, disable=not (s.progress and show), dynamic_ncols=True,
               leave=show)
    cores = CoreShare(s.adaptive_threads and device.type == "cpu", s.threads)
    threads_used = {cores.threads}
    began, last_loss, skipped, fixed = time.time(), None, 0, None
    allowed_skips = max(1, int(MAX_SKIPPED_FRACTION * s.steps))
    for batch in loader:
        step = batch["step"]
        views = [v.to(device, non_blocking=True) for v in batch["views"]]
        if on_device is not None:
            views = [on_device(v, step_generator(s.seed, step, rank, k)) for k, v in enumerate(views)]
        views = in_layout(views, s.channels_last)
        labels = batch["label"].to(device)
        if fixed is None:
            fixed = check_bf16_convolutions(model, views, labels, device, s)
        with autocast_for(device, s.precision):
            out = model(views, labels)
        loss = out["loss"]
        reported = mean_over_processes(loss.detach().float())  # every rank stops together on NaN
        if not torch.isfinite(reported):
            raise TrainingDiverged(f"loss is {reported.item()} at step {step}; stopped. The last good checkpoint is "
                                   f"{checkpoint_path} ({s.diverged_hint})")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if hooks is not None:
            hooks.before_optimizer_step(step)
        if s.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        if scaler.is_enabled() or gradients_finite(model):  # the fp16 scaler makes its own check
            scaler.step(opt)
        else:
            skipped += 1
            if skipped > allowed_skips:
                raise TrainingDiverged(f"gradients not finite in {skipped} steps, the last at step {step}; stopped. "
                                       f"The last good checkpoint is {checkpoint_path} ({s.diverged_hint})")
            log.warning("step %d: gradients not finite; no update (%d of %d allowed)", step, skipped, allowed_skips)
        scaler.update()
        sched.step()
        extra = hooks.after_optimizer_step(step + 1, s.steps) if hooks is not None else {}
        last_loss = float(reported)
        done = step + 1
        elapsed = time.time() - began
        rate = (done - start) * clips_per_step / max(elapsed, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}", clips_s=f"{rate:.1f}")
        if done % s.log_every == 0 or done == s.steps:
            threads = cores.update()
            threads_used.add(threads)
            if log_values is not None:
                log_values(done, {"loss": last_loss, "lr": sched.get_last_lr()[0], "clips_per_s": rate,
                                  "threads": threads, **extra,
                                  **{k: float(v) for k, v in out.items() if k != "loss"}})
        if save is not None and (done % s.checkpoint_every == 0 or done == s.steps):
            save(done, last_loss)
    bar.close()
    return LoopResult(last_loss, time.time() - began, sorted(threads_used), skipped, fixed or [])


def check_bf16_convolutions(model, views, labels, device: torch.device, s: LoopSettings) -> List[str]:
    """:func:`benchmark.bf16_conv_guard.guard_convolutions` on the first batch, where it applies
    (bf16 on a CPU, ``s.bf16_conv_check``); the names of the convolutions it fixed."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return guard_where_needed(inner, lambda probe: probe(views, labels), device, s.precision, s.bf16_conv_check)


def pretrain(cfg, method: torch.nn.Module, data: PretrainData, run_dir: Path, device: torch.device,
             dist_info: DistInfo, skipped_log: str, metrics: MetricsLog) -> PretrainResult:
    t = cfg.trainer
    records = data.records
    plan = schedule_in_steps(t, len(records), dist_info.world_size)
    if (plan.steps, plan.warmup_steps, plan.lr) != (t.steps, t.warmup_steps, t.lr):
        log.info("schedule: %d steps (%d warm-up) at lr %g", plan.steps, plan.warmup_steps, plan.lr)
        t.steps, t.warmup_steps, t.lr = plan.steps, plan.warmup_steps, plan.lr  # result.json's config: as run
        t.epochs = t.warmup_epochs = t.lr_reference_batch = None
        t.warmup_start_lr = None if plan.warmup_start_factor is None else plan.warmup_start_factor * plan.lr
    ckpt_dir = run_dir / "checkpoints"
    fp = fingerprint(cfg)
    if dist_info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / "fingerprint.txt").write_text(fp)
    method.to(device)
    apply_speed_levers(method, t.channels_last, t.compile)
    method.set_epoch_steps(math.ceil(len(records) / (t.batch_size * dist_info.world_size)))
    model = method
    if dist_info.world_size > 1:
        if t.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # broadcast_buffers=False: SwAV's queue is each process's own (as in SwAV); MoCo's queue and
        # the momentum targets are equal on every rank by construction; evaluation reads rank 0's BN
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False,
            broadcast_buffers=False)
    opt = build_optimizer(t.optimizer, method.param_groups(), t.lr, t.weight_decay, t.momentum, t.nesterov,
                          t.lars_trust, t.bn_weight_decay, batch_norm_parameters(method))
    sched = build_scheduler(opt, t.steps, t.schedule, t.warmup_steps, t.decay_every, t.decay_factor,
                            warmup_start=plan.warmup_start_factor)
    scaler = new_scaler(device, t.precision)
    start = 0
    resume = resolve_resume(cfg, run_dir, fp)
    if resume is not None:
        start = int(resume_training(resume, method, opt, sched, scaler, cfg.method.name)["step"])
        log.info("resumed from %s at step %d", resume, start)
        if resume.parent != ckpt_dir and dist_info.is_main and not (resume.parent / "DONE").exists():
            (resume.parent / "DONE").write_text(f"continued in {run_dir}\n")  # auto-resume skips it from now on

    def save(step: int, loss: Optional[float]) -> None:
        if dist_info.is_main:
            save_checkpoint(ckpt_dir / "last.pt", training_state(method, opt, sched, scaler, step,
                                                                  loss=float("nan") if loss is None else loss,
                                                                  fingerprint=fp))

    stream = PretrainStream(records, data.sampler, data.view_fn, batch_size=t.batch_size, steps=t.steps, seed=cfg.seed,
                            start_step=start, rank=dist_info.rank, world_size=dist_info.world_size,
                            skipped_log=skipped_log)
    settings = LoopSettings(steps=t.steps, precision=t.precision, grad_clip=t.grad_clip,
                            checkpoint_every=t.checkpoint_every, log_every=t.log_every, channels_last=t.channels_last,
                            num_workers=t.num_workers, progress=t.progress, desc=f"pretrain {cfg.method.name}",
                            adaptive_threads=t.adaptive_threads, threads=t.threads, seed=cfg.seed,
                            bf16_conv_check=t.bf16_conv_check, diverged_hint="try a lower trainer.lr or trainer.precision=fp32")
    clips_per_step = t.batch_size * dist_info.world_size * data.sampler.clips
    loop = train_steps(
        model, stream, opt, sched, scaler, device, settings, start, hooks=method, on_device=data.on_device,
        clips_per_step=clips_per_step, rank=dist_info.rank, show=dist_info.is_main, save=save,
        log_values=metrics.log, checkpoint_path=str(ckpt_dir / "last.pt"))
    last_loss = loop.last_loss
    if start >= t.steps:
        last_loss = float(load_checkpoint(resume)["loss"]) if resume else None
    if dist_info.is_main:
        (ckpt_dir / "DONE").write_text("pretraining finished\n")
    return PretrainResult(steps=t.steps, clips_seen=(t.steps - start) * clips_per_step, seconds=loop.seconds,
                          final_loss=last_loss, checkpoint=str(ckpt_dir / "last.pt"), threads=loop.threads,
                          skipped_steps=loop.skipped_steps, fp32_weight_gradients=loop.fp32_weight_gradients)
