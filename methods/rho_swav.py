"""rho-SwAV (Feichtenhofer et al. 2021, eq. 3; Caron et al. 2020): codes of clips 0 and 1 by
Sinkhorn-Knopp, each predicted from the other clips through normalised prototypes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from methods.base import register_method
from methods.losses import swav_loss, swav_view_agreement
from methods.rho_common import RhoConfig, RhoMethod


@dataclass
class RhoSwAVConfig(RhoConfig):
    temperature: float = MISSING
    prototypes: int = MISSING
    sinkhorn_eps: float = MISSING
    sinkhorn_iters: int = MISSING
    freeze_prototypes_steps: Optional[int] = MISSING  # null: one epoch of the pretraining data
    swav_queue_length: int = MISSING  # past embeddings per assigning clip (0: no queue)
    swav_queue_start_step: int = MISSING  # the queue is used from this step on, once full


@register_method
class RhoSwAV(RhoMethod):
    name = "rho_swav"
    Config = RhoSwAVConfig

    def __init__(self, encoder, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        self.prototypes = nn.Linear(cfg.out_dim, cfg.prototypes, bias=False)
        self.normalize_prototypes()
        if cfg.swav_queue_length < 0 or cfg.swav_queue_start_step < 0:
            from benchmark.errors import UserError
            raise UserError(f"method.swav_queue_length and method.swav_queue_start_step must be >= 0 (got "
                            f"{cfg.swav_queue_length} and {cfg.swav_queue_start_step}); 0 turns the queue off")
        # SwAV's queue of the assigning clips' past embeddings (one per assigning clip, per
        # process, zeros = empty), used once full and from step ``swav_queue_start_step`` on
        self.register_buffer("queue", torch.zeros(2, cfg.swav_queue_length, cfg.out_dim))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def forward(self, views, labels=None):
        self.normalize_prototypes()  # every step (SwAV)
        z = [F.normalize(x, dim=1) for x in self.embed(views)]
        scores = [self.prototypes(x) for x in z]
        assign = tuple(range(min(2, len(scores))))
        queued = self.queued_scores(len(assign))
        self.enqueue([z[s] for s in assign])
        loss = swav_loss(scores, self.cfg.temperature, self.cfg.sinkhorn_eps, self.cfg.sinkhorn_iters, assign, queued)
        # collapse monitor: the uniform solution attracts while this is below eps / (2 temperature)
        return {"loss": loss, "view_agreement": swav_view_agreement(scores[0], scores[1])}

    @torch.no_grad()
    def queued_scores(self, n: int):
        """The queue's prototype scores for the first ``n`` assigning clips, or None while it is off
        (``swav_queue_length`` 0), before ``swav_queue_start_step``, or not yet full (as the reference)."""
        if not self.cfg.swav_queue_length or int(self.step) < self.cfg.swav_queue_start_step or not self.queue[:n, -1].any():
            return None
        return [self.prototypes(self.queue[i].to(self.prototypes.weight.dtype)).float() for i in range(n)]

    @torch.no_grad()
    def enqueue(self, embeddings) -> None:
        """Newest embeddings first, the oldest fall off the end; counts training steps."""
        self.step += 1
        if not self.cfg.swav_queue_length:
            return
        for i, e in enumerate(embeddings):
            b = min(e.shape[0], self.queue.shape[1])
            self.queue[i] = torch.cat([e[:b].detach().float(), self.queue[i, :-b]])

    def set_epoch_steps(self, steps: int) -> None:
        if self.cfg.freeze_prototypes_steps is None:
            self.cfg.freeze_prototypes_steps = steps  # the reference freezes prototypes for the first epoch

    def before_optimizer_step(self, step: int) -> None:
        if step < (self.cfg.freeze_prototypes_steps or 0) and self.prototypes.weight.grad is not None:
            self.prototypes.weight.grad = None  # prototypes frozen during the first epoch
