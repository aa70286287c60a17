"""Optimizers (Adam, SGD, LARS) and learning-rate schedules (constant, cosine, step; warm-up)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch.optim import Optimizer

OPTIMIZERS = ("adam", "sgd", "lars")
SCHEDULES = ("constant", "cosine", "step")
LARS_TRUST = ("norm_of_sum", "sum_of_norms")


class LARS(Optimizer):
    """LARS (You et al. 2017): SGD with momentum whose update of each weight matrix is scaled by
    a trust ratio; biases and BN are excluded (no scaling, no weight decay). ``trust``:

    - ``norm_of_sum``: ``eta * ||w|| / ||g + wd w||``, SimCLR's and BYOL's LARS;
    - ``sum_of_norms``: ``eta * ||w|| / (||g|| + wd ||w|| + eps)``, SlowFast's (the apex LARC it
      adapts; ``slowfast/models/optimizer.py``, ``LARS.step``), the rho presets'.

    ``nesterov`` as ``torch.optim.SGD``'s (SlowFast's inner SGD has ``SOLVER.NESTEROV`` True)."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=1e-6, eta=0.001, trust="norm_of_sum",
                 nesterov=False, eps=1e-8):
        if trust not in LARS_TRUST:
            from benchmark.errors import unknown_choice
            raise unknown_choice("trainer.lars_trust", trust, LARS_TRUST)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, trust=trust,
                                      nesterov=nesterov, eps=eps))

    @staticmethod
    def trust_ratio(w, g, weight_decay, eta, trust, eps):
        wn, gn = torch.norm(w), torch.norm(g)
        if trust == "norm_of_sum":
            dn = torch.norm(g.add(w, alpha=weight_decay))
            return torch.where((wn > 0) & (dn > 0), eta * wn / dn, torch.ones_like(wn))
        return torch.where((wn > 0) & (gn > 0), eta * wn / (gn + weight_decay * wn + eps), torch.ones_like(wn))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    trust = self.trust_ratio(p, d, g["weight_decay"], g["eta"], g["trust"], g["eps"])
                    d = d.add(p, alpha=g["weight_decay"]) * trust
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(g["momentum"]).add_(d)
                p.add_(d.add(buf, alpha=g["momentum"]) if g["nesterov"] else buf, alpha=-g["lr"])


def fused_supported(params) -> bool:
    """Whether PyTorch's fused Adam and SGD kernels (one pass over every parameter instead of
    several ops per tensor) can take ``params``: floating tensors on the CPU or CUDA. Adam's
    step on the VDIM method's 4.9M parameters takes 2.7 ms fused against 10.8 ms per tensor on
    this CPU."""
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    return bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                    nesterov: bool = False, lars_trust: str = "norm_of_sum", bn_weight_decay: Optional[float] = None,
                    bn_params=()) -> Optimizer:
    """``params``: tensors, or param groups (dicts with ``params`` and an ``lr_scale`` on ``lr``).
    ``bn_weight_decay``, where set, is the weight decay of the tensors in ``bn_params`` (SlowFast's
    ``BN.WEIGHT_DECAY``, 0: its optimizer puts every normalisation layer's weights in a group of
    their own, :func:`batch_norm_parameters`); ``nesterov`` for SGD and LARS."""
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    bn = {id(p) for p in bn_params} if bn_weight_decay is not None else set()
    params = []
    for g in groups:
        kept = [p for p in g["params"] if p.requires_grad]
        rate = lr * g.get("lr_scale", 1.0)
        if not bn:
            params.append({"params": kept, "lr": rate, "weight_decay": weight_decay})
            continue
        for part, decay in (([p for p in kept if id(p) not in bn], weight_decay),
                            ([p for p in kept if id(p) in bn], bn_weight_decay)):
            if part:
                params.append({"params": part, "lr": rate, "weight_decay": decay})
    fused = fused_supported(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                               fused=fused)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay, trust=lars_trust, nesterov=nesterov)
    from benchmark.errors import unknown_choice
    raise unknown_choice("optimizer", name, OPTIMIZERS)


def batch_norm_parameters(model: torch.nn.Module) -> List[torch.Tensor]:
    """The weights and biases of every batch (and instance) norm layer, as SlowFast's optimizer
    finds them (``torch.nn.modules.batchnorm._NormBase``)."""
    return [p for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)
            for p in m.parameters(recurse=False)]


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
    is set (SlowFast's ``BASE_LR_SCALE_NUM_SHARDS``, its rates being per 64-clip machine). ``t`` is
    ``trainer`` or ``eval.finetune`` (which has no warm-up keys: none)."""
    global_batch = t.batch_size * world_size
    per_epoch = max(1, math.ceil(train_videos / global_batch))
    steps = t.steps if t.epochs is None else max(1, round(t.epochs * per_epoch))
    warmup_epochs, warmup_start_lr = getattr(t, "warmup_epochs", None), getattr(t, "warmup_start_lr", None)
    warmup = getattr(t, "warmup_steps", 0) if warmup_epochs is None else round(warmup_epochs * per_epoch)
    scale = 1.0 if t.lr_reference_batch is None else global_batch / t.lr_reference_batch
    lr = t.lr * scale
    start = None if warmup_start_lr is None else warmup_start_lr * scale / lr
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
