"""The method contract (after solo-learn): a method declares what it needs, the base does the rest.

A method is one module under ``methods/`` holding a :class:`Method` subclass decorated with
:func:`register_method`, and one YAML under ``configs/method/<name>.yaml`` naming the class's
``Config`` as its schema. The class declares everything the harness reads of it:

* ``name``: its config name (``method=<name>``);
* ``Config``: its config dataclass (a :class:`MethodConfig`), only the keys it reads; the
  values live in the YAML;
* ``clip_sampler(cfg, encoder_cfg)``: the sampler of one pretraining sample
  (:mod:`benchmark.data.samplers`; its ``clips`` is the clips per sample), or None;
* ``pretrains`` (False: evaluated as initialised), ``uses_labels`` (pretrains on the labelled
  train list, and is evaluated on its own split only) and ``min_batch_size``;
* ``default_encoder``: the encoder ``python -m benchmark run method=<name>`` picks when the
  command names no ``encoder=`` and no ``experiment=`` (None: the run's default encoder);
* ``forward(views, labels) -> dict`` with ``"loss"``, and the optional hooks
  ``param_groups``, ``set_epoch_steps``, ``before_optimizer_step`` and ``after_optimizer_step``.

It may declare ``momentum_pairs`` (``(online, target)`` modules: the base makes the targets,
freezes them and updates them after each optimizer step with the cosine schedule of
BYOL/MoCo) and uses :func:`gather_with_grad` for negatives across processes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.distributed as dist
from omegaconf import MISSING
from torch import nn

from benchmark.config import AugmentConfig


@dataclass
class MethodConfig:
    """What every method's config holds: its name and the augmentation of its pretraining clips."""
    name: str = MISSING
    augment: AugmentConfig = field(default_factory=AugmentConfig)


METHODS: Dict[str, Type["Method"]] = {}


def register_method(cls: Type["Method"]) -> Type["Method"]:
    """Class decorator: ``method=<cls.name>`` picks ``cls``; its ``Config`` becomes the schema
    ``/schema/method/<cls.name>`` that the method's YAML names."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"two methods are named {cls.name!r}: {METHODS[cls.name].__qualname__} and {cls.__qualname__}")
    METHODS[cls.name] = cls
    return cls


def rank() -> int:
    """This process's rank in torch.distributed (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes in torch.distributed's group (1 when not distributed): the one test every
    cross-process sum, gather and queue makes before it communicates."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on its gradient made contiguous."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


@torch.no_grad()
def with_shuffled_batch(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn`` (no gradient) of this process's batch ``x`` under MoCo's shuffling BN (He et al. 2020,
    sec. 3.3; SlowFast's ``_batch_shuffle``/``_batch_unshuffle``): every process's batch gathered,
    permuted by a permutation rank 0 draws, each process runs ``fn`` on its share, and the results
    are gathered and put back in order, so a key's batch-norm statistics come from other
    processes' samples. One process: ``fn(x)``."""
    n = world_size()
    if n == 1:
        return fn(x)
    rank, b = dist.get_rank(), x.shape[0]
    everything = all_gather_no_grad(x.contiguous())
    perm = torch.randperm(everything.shape[0], device=x.device)
    dist.broadcast(perm, src=0)
    out = all_gather_no_grad(fn(everything[perm[rank * b:(rank + 1) * b]]).contiguous())
    return out[torch.argsort(perm)][rank * b:(rank + 1) * b]


@torch.no_grad()
def all_gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Every process's ``x`` concatenated along dim 0, in rank order, without gradient."""
    pieces = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(pieces, x)
    return torch.cat(pieces)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 with gradient flowing back to each process's slice.

    The gradient of every gathered piece is made contiguous first: ``torch.distributed.nn``'s
    all-gather backward exchanges gradients in buffers made by ``empty_like`` of the incoming
    ones, and with gloo's all-to-all a permuted gradient (e.g. from a ``[B, D, N] -> [D, B N]``
    reshape) comes back wrong (``tests/test_distributed.py`` caught it on the VDIM loss).
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather
    return torch.cat([_ContiguousGrad.apply(piece) for piece in all_gather(x)], dim=0)


@torch.no_grad()
def feature_shapes(encoder: nn.Module) -> Dict[str, torch.Size]:
    """The shape of each named map of ``encoder`` at its own input (``encoder.input_shape``): two
    zero clips in evaluation mode, so no batch-norm statistic moves; the mode is restored."""
    was = encoder.training
    encoder.eval()
    try:
        t, h, w = encoder.input_shape
        return {k: v.shape for k, v in encoder(torch.zeros(2, 3, t, h, w)).items()}
    finally:
        encoder.train(was)


def cosine_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, from base to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * min(step, total) / max(total, 1)) + 1) / 2


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, tau: float) -> None:
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


def clip_pairs(n: int, pairing: str) -> List[Tuple[int, int]]:
    """Ordered (query, key) clip pairs: ``all`` (every ordered pair) or ``consecutive``
    ((0,1), (1,2), ... both ways; the reference SimCLR's choice for rho > 2)."""
    if pairing == "all":
        return [(i, j) for i in range(n) for j in range(n) if i != j]
    if pairing == "consecutive":
        return [p for i in range(n - 1) for p in ((i, i + 1), (i + 1, i))]
    from benchmark.errors import unknown_choice
    raise unknown_choice("method.pairing", pairing, ("all", "consecutive"))


class Method(nn.Module):
    """Base of every method: owns the encoder, the momentum targets and the step hook."""

    name: str = ""
    Config: type = MethodConfig
    pretrains: bool = True  # False: no pretraining step; the encoder is evaluated as initialised
    uses_labels: bool = False  # True: ``forward`` reads the labels
    # the fewest clips a pretraining batch may hold: batch norm's statistics in training need two
    # samples per channel, and a contrastive loss needs another video as a negative
    min_batch_size: int = 2
    default_encoder: str | None = None  # e.g. DPC's own 2D-3D ResNet
    momentum_base: float = 0.0

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        """The sampler of one pretraining sample (:mod:`benchmark.data.samplers`), built from the
        method's config; None for a method that does not pretrain."""
        raise NotImplementedError

    def __init__(self, encoder: nn.Module, cfg, num_classes: Optional[int] = None):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.num_classes = num_classes
        self.momentum_pairs: List[Tuple[str, str]] = []  # names of (online, target) attributes
        self.register_buffer("tau", torch.tensor(float(self.momentum_base)))

    def make_target(self, online_name: str, target_name: str) -> None:
        target = copy.deepcopy(getattr(self, online_name))
        for p in target.parameters():
            p.requires_grad_(False)
        setattr(self, target_name, target)
        self.momentum_pairs.append((online_name, target_name))

    def forward(self, views: Sequence[torch.Tensor], labels: torch.Tensor | None = None) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def param_groups(self) -> List[Dict]:
        """The optimizer's parameter groups, each with an ``lr_scale`` on the trainer's learning
        rate; one group unless a method gives a part its own rate."""
        return [{"params": list(self.parameters()), "lr_scale": 1.0}]

    def after_optimizer_step(self, step: int, total_steps: int) -> Dict[str, float]:
        """Called once after each optimizer step: moving averages, queues, schedules."""
        if not self.momentum_pairs:
            return {}
        tau = cosine_momentum(self.momentum_base, step, total_steps)
        for online, target in self.momentum_pairs:
            update_momentum(getattr(self, online), getattr(self, target), tau)
        self.tau.fill_(tau)
        return {"tau": tau}

    def set_epoch_steps(self, steps: int) -> None:
        """Told once by the trainer before training: optimizer steps in one epoch of the pretraining
        data (iterable video streams have no epochs of their own)."""

    def before_optimizer_step(self, step: int) -> None:
        """Called after backward, before the optimizer step (e.g. SwAV's frozen prototypes)."""
