"""rho-MoCo (Feichtenhofer et al. 2021; MoCo v2 heads): each query clip against every other
clip's momentum key plus a queue of past keys; every clip's key is enqueued."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from methods.base import all_gather_no_grad, clip_pairs, register_method, world_size
from methods.losses import info_nce
from methods.rho_common import MomentumTargetConfig, RhoMethod


QUEUE_SCOPES = ("global", "per_process")


@dataclass
class RhoMoCoConfig(MomentumTargetConfig):
    pairing: str = MISSING
    temperature: float = MISSING
    queue_size: int = MISSING
    # global: every process's keys gathered into one queue, as MoCo's own code (facebookresearch/moco,
    # concat_all_gather), so the queue renews world-size times faster; per_process: each process
    # queues its own keys only, as SlowFast's ContrastiveModel._dequeue_and_enqueue
    queue_scope: str = "global"
    # SlowFast's contrastive_parameter_surgery: no parameter update in the first
    # queue_size // global batch steps, while the random initial queue is replaced
    frozen_until_queue_full: bool = False
    # MoCo's shuffling BN across processes (He et al. 2020, sec. 3.3): on by SlowFast's rule
    # wherever its batch norm is not synchronised over all GPUs (ContrastiveModel._batch_shuffle_on)
    shuffle_bn: bool = False


@register_method
class RhoMoCo(RhoMethod):
    name = "rho_moco"
    Config = RhoMoCoConfig

    def __init__(self, encoder, cfg, num_classes=None):
        self.momentum_base = cfg.momentum
        super().__init__(encoder, cfg, num_classes)
        self.make_target("encoder", "target_encoder")
        self.make_target("projector", "target_projector")
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending = None
        self._frozen_steps = None
        if cfg.queue_scope not in QUEUE_SCOPES:
            from benchmark.errors import unknown_choice
            raise unknown_choice("method.queue_scope", cfg.queue_scope, QUEUE_SCOPES)

    def forward(self, views, labels=None):
        q = self.embed(views)
        with torch.no_grad():
            k = [F.normalize(x, dim=1) for x in self.target_embed(views)]
        losses = [info_nce(q[i], k[j], self.queue.clone().detach(), self.cfg.temperature)
                  for i, j in clip_pairs(len(q), self.cfg.pairing)]
        self._pending = torch.cat(k)
        if self._frozen_steps is None:
            self._frozen_steps = (self.cfg.queue_size // (views[0].shape[0] * world_size())
                                  if self.cfg.frozen_until_queue_full else 0)
        return {"loss": torch.stack(losses).mean()}

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        if world_size() > 1 and self.cfg.queue_scope == "global":
            keys = all_gather_no_grad(keys)
        n, size = keys.shape[0], self.queue.shape[0]
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys[-size:] if n > size else keys
        self.queue_ptr.fill_(int((self.queue_ptr + n) % size))

    def before_optimizer_step(self, step: int) -> None:
        """Under ``frozen_until_queue_full``, the first ``queue_size // global batch`` steps make no
        parameter update (their gradients are dropped); the keys still fill the queue."""
        super().before_optimizer_step(step)
        if self._frozen_steps and step < self._frozen_steps:
            for p in self.parameters():
                p.grad = None

    def after_optimizer_step(self, step, total_steps):
        logs = super().after_optimizer_step(step, total_steps)
        if self._pending is not None:
            self.enqueue(self._pending)
            self._pending = None
        return logs
