"""rho-SwAV (Feichtenhofer et al. 2021, eq. 3; Caron et al. 2020): codes of clips 0 and 1 by
Sinkhorn-Knopp, each predicted from the other clips through normalised prototypes."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.losses import swav_loss
from methods.rho_common import RhoMethod


class RhoSwAV(RhoMethod):
    def __init__(self, encoder, cfg):
        super().__init__(encoder, cfg)
        self.prototypes = nn.Linear(cfg.out_dim, cfg.prototypes, bias=False)
        self.normalize_prototypes()

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def forward(self, views, labels=None):
        self.normalize_prototypes()  # every step (SwAV)
        scores = [self.prototypes(F.normalize(z, dim=1)) for z in self.embed(views)]
        assign = tuple(range(min(2, len(scores))))
        return {"loss": swav_loss(scores, self.cfg.temperature, self.cfg.sinkhorn_eps, self.cfg.sinkhorn_iters, assign)}

    def set_epoch_steps(self, steps: int) -> None:
        if self.cfg.freeze_prototypes_steps is None:
            self.cfg.freeze_prototypes_steps = steps  # the reference freezes prototypes for the first epoch

    def before_optimizer_step(self, step: int) -> None:
        if step < (self.cfg.freeze_prototypes_steps or 0) and self.prototypes.weight.grad is not None:
            self.prototypes.weight.grad = None  # prototypes frozen during the first epoch
