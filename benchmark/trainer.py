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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark.cpu_share import CoreShare
from benchmark.checkpoint import (find_resumable, load_checkpoint, rng_state, save_checkpoint, set_rng_state)
from benchmark.data.datasets import PretrainStream
from benchmark.data.batch_augment import step_generator
from benchmark.data.pipeline import batch_augment, train_sampler
from benchmark.distributed import DistInfo, mean_over_processes
from benchmark.errors import UserError, check_minimums, check_positive, unknown_choice
from benchmark.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NOT_FINGERPRINTED = ("resume", "progress", "num_workers", "log_every", "checkpoint_every", "threads",
                     "adaptive_threads", "allocator")


class TrainingDiverged(UserError):
    pass


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
    check_positive("trainer", t, ["lr"])
    if t.threads is not None and t.threads < 1:
        raise UserError(f"bad trainer.threads {t.threads}: must be >= 1, or null for torch's default")


@dataclass
class PretrainResult:
    steps: int
    clips_seen: int
    seconds: float
    final_loss: Optional[float]
    checkpoint: Optional[str]


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
    convolve faster) and ``trainer.compile`` (``torch.compile`` of ``method.encoder``, in place, so
    state_dict keys and checkpoints stay the same; with ``compile=False`` any module will do).
    Measured by ``python -m benchmark perf``. On CUDA it also turns on cuDNN's autotuner, which
    picks the fastest convolution algorithm once per shape (clip shapes are fixed in a run)."""
    if any(p.is_cuda for p in method.parameters()):
        torch.backends.cudnn.benchmark = True
    if channels_last:
        method.to(memory_format=torch.channels_last_3d)
    if compile:
        method.encoder.compile()


def in_layout(views: List[torch.Tensor], channels_last: bool) -> List[torch.Tensor]:
    """The batch's clips in the layout the weights are in (see :func:`apply_speed_levers`)."""
    return [v.contiguous(memory_format=torch.channels_last_3d) for v in views] if channels_last else views


def pretrain(cfg, method: torch.nn.Module, records: List, run_dir: Path, device: torch.device, dist_info: DistInfo,
             skipped_log: str, metrics: MetricsLog) -> PretrainResult:
    t = cfg.trainer
    sampler = train_sampler(cfg.method, cfg.encoder, t.augment_on)
    on_device = batch_augment(cfg.method, cfg.encoder, t.augment_on)  # None: the workers augmented the views
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
    opt = build_optimizer(t.optimizer, method.param_groups(), t.lr, t.weight_decay, t.momentum)
    sched = build_scheduler(opt, t.steps, t.schedule, t.warmup_steps, t.decay_every, t.decay_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=(t.precision == "fp16" and device.type == "cuda"))
    start = 0
    resume = resolve_resume(cfg, run_dir, fp)
    if resume is not None:
        state = load_checkpoint(resume)
        method.load_state_dict(state["model"])
        try:
            opt.load_state_dict(state["optimizer"])
        except ValueError as e:  # torch checks the parameter groups' number and sizes
            raise UserError(f"{resume}: its optimizer state does not fit {cfg.method.name}'s parameter groups in "
                            f"this code ({e}); resume it with the commit in its result.json") from e
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", resume, start)
        if resume.parent != ckpt_dir and dist_info.is_main and not (resume.parent / "DONE").exists():
            (resume.parent / "DONE").write_text(f"continued in {run_dir}\n")  # auto-resume skips it from now on

    def save(step: int, loss: Optional[float]) -> None:
        if dist_info.is_main:
            save_checkpoint(ckpt_dir / "last.pt", {
                "model": method.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), "step": step,
                "loss": float("nan") if loss is None else loss, "fingerprint": fp})

    stream = PretrainStream(records, *sampler, batch_size=t.batch_size, steps=t.steps, seed=cfg.seed,
                            start_step=start, rank=dist_info.rank, world_size=dist_info.world_size,
                            skipped_log=skipped_log)
    loader = DataLoader(stream, batch_size=None, num_workers=t.num_workers,
                        persistent_workers=False, prefetch_factor=4 if t.num_workers else None,
                        pin_memory=device.type == "cuda")
    model.train()
    clips_per_step = t.batch_size * dist_info.world_size * (2 if cfg.method.sampler == "vdim_views" else
                                                             cfg.method.clips.rho)
    bar = tqdm(total=t.steps, initial=start, desc=f"pretrain {cfg.method.name}", disable=not (t.progress and dist_info.is_main),
               dynamic_ncols=True)
    cores = CoreShare(t.adaptive_threads and device.type == "cpu", t.threads)
    began, last_loss, step = time.time(), None, start
    for batch in loader:
        step = batch["step"]
        views = [v.to(device, non_blocking=True) for v in batch["views"]]
        if on_device is not None:
            views = [on_device(v, step_generator(cfg.seed, step, dist_info.rank, k)) for k, v in enumerate(views)]
        views = in_layout(views, t.channels_last)
        labels = batch["label"].to(device)
        with autocast_for(device, t.precision):
            out = model(views, labels)
        loss = out["loss"]
        reported = mean_over_processes(loss.detach().float())  # every rank stops together on NaN
        if not torch.isfinite(reported):
            raise TrainingDiverged(f"loss is {reported.item()} at step {step}; stopped. The last good checkpoint is "
                                   f"{ckpt_dir / 'last.pt'} (try a lower trainer.lr or trainer.precision=fp32)")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        method.before_optimizer_step(step)
        if t.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        extra = method.after_optimizer_step(step + 1, t.steps)
        last_loss = float(reported)
        done = step + 1
        elapsed = time.time() - began
        rate = (done - start) * clips_per_step / max(elapsed, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}", clips_s=f"{rate:.1f}")
        if done % t.log_every == 0 or done == t.steps:
            metrics.log(done, {"loss": last_loss, "lr": sched.get_last_lr()[0], "clips_per_s": rate,
                               "threads": cores.update(), **extra,
                               **{k: float(v) for k, v in out.items() if k != "loss"}})
        if done % t.checkpoint_every == 0 or done == t.steps:
            save(done, last_loss)
    bar.close()
    if start >= t.steps:
        last_loss = float(load_checkpoint(resume)["loss"]) if resume else None
    if dist_info.is_main:
        (ckpt_dir / "DONE").write_text("pretraining finished\n")
    return PretrainResult(steps=t.steps, clips_seen=(t.steps - start) * clips_per_step, seconds=time.time() - began,
                          final_loss=last_loss, checkpoint=str(ckpt_dir / "last.pt"))
