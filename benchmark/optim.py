"""Optimizers (Adam, SGD, LARS) and learning-rate schedules (constant, cosine, step; warm-up)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch.optim import Optimizer

OPTIMIZERS = ("adam", "sgd", "lars")
SCHEDULES = ("constant", "cosine", "step")


class LARS(Optimizer):
    """LARS (You et al. 2017) as in SimCLR/BYOL: SGD with momentum whose update of each
    weight matrix is scaled by ``eta * ||w|| / ||g + wd w||``; biases and BN are excluded."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=1e-6, eta=0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    d = d.add(p, alpha=g["weight_decay"])
                    wn, dn = torch.norm(p), torch.norm(d)
                    trust = torch.where((wn > 0) & (dn > 0), g["eta"] * wn / dn, torch.ones_like(wn))
                    d = d * trust
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(g["momentum"]).add_(d)
                p.add_(buf, alpha=-g["lr"])


def fused_supported(params) -> bool:
    """Whether PyTorch's fused Adam and SGD kernels (one pass over every parameter instead of
    several ops per tensor) can take ``params``: floating tensors on the CPU or CUDA. Adam's
    step on the VDIM method's 4.9M parameters takes 2.7 ms fused against 10.8 ms per tensor on
    this CPU."""
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    return bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> Optimizer:
    """``params``: tensors, or param groups (dicts with ``params`` and an ``lr_scale`` on ``lr``)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{"params": [p for p in g["params"] if p.requires_grad], "lr": lr * g.get("lr_scale", 1.0)}
                  for g in params]
    else:
        params = [p for p in params if p.requires_grad]
    fused = fused_supported(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    from benchmark.errors import unknown_choice
    raise unknown_choice("optimizer", name, OPTIMIZERS)


@dataclass(frozen=True)
class StepSchedule:
    """The pretraining schedule in steps and the base rate, as the loop runs it."""
    steps: int
    warmup_steps: int
    lr: float
    warmup_start_factor: Optional[float]  # the warm-up's first rate over lr; None: 1 / warmup_steps


def schedule_in_steps(t, train_videos: int, world_size: int) -> StepSchedule:
    """``trainer.*`` as steps: ``epochs`` and ``warmup_epochs`` (SlowFast's ``SOLVER.MAX_EPOCH`` and
    ``WARMUP_EPOCHS``) times the steps an epoch takes, ``ceil(train_videos / global batch)``, where
    they are set; ``lr`` and ``warmup_start_lr`` times ``global batch / lr_reference_batch`` where that
    is set (SlowFast's ``BASE_LR_SCALE_NUM_SHARDS``, its rates being per 64-clip machine)."""
    global_batch = t.batch_size * world_size
    per_epoch = max(1, math.ceil(train_videos / global_batch))
    steps = t.steps if t.epochs is None else max(1, round(t.epochs * per_epoch))
    warmup = t.warmup_steps if t.warmup_epochs is None else round(t.warmup_epochs * per_epoch)
    scale = 1.0 if t.lr_reference_batch is None else global_batch / t.lr_reference_batch
    lr = t.lr * scale
    start = None if t.warmup_start_lr is None else t.warmup_start_lr * scale / lr
    return StepSchedule(steps, min(warmup, steps), lr, start)


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0, decay_every: int = 0,
              decay_factor: float = 0.5, decay_at=(), warmup_start: Optional[float] = None) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up (from ``warmup_start``, or
    from ``1 / warmup``), then the schedule (``step``: ``decay_factor`` once per ``decay_every``
    steps, or once at each step of ``decay_at`` where that is given, as ``MultiStepLR``)."""
    if warmup and step < warmup:
        if warmup_start is not None:
            return warmup_start + (1 - warmup_start) * step / warmup
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    if schedule == "step":
        if decay_at:
            return decay_factor ** sum(step >= m for m in decay_at)
        return decay_factor ** ((step // decay_every) if decay_every else 0)
    from benchmark.errors import unknown_choice
    raise unknown_choice("schedule", schedule, SCHEDULES)


def build_scheduler(optimizer, total: int, schedule: str, warmup: int = 0, decay_every: int = 0, decay_factor: float = 0.5,
                    decay_at=(), warmup_start: Optional[float] = None):
    lr_factor(0, total, schedule, warmup, decay_every, decay_factor)  # validates the name
    decay_at = tuple(decay_at)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, schedule, warmup, decay_every, decay_factor, decay_at, warmup_start))
