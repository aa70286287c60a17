"""rho-SimCLR: NT-Xent between clips of one video (Feichtenhofer et al. 2021, eq. 1), with
embeddings all-gathered with gradient across processes; temperature 0.1, 3-layer MLP."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from methods.base import clip_pairs, gather_with_grad, register_method
from methods.losses import nt_xent
from methods.rho_common import RhoConfig, RhoMethod


@dataclass
class RhoSimCLRConfig(RhoConfig):
    pairing: str = MISSING  # all | consecutive: which clip pairs (methods.base.clip_pairs)
    temperature: float = MISSING


@register_method
class RhoSimCLR(RhoMethod):
    name = "rho_simclr"
    Config = RhoSimCLRConfig

    def forward(self, views, labels=None):
        z = [gather_with_grad(x) for x in self.embed(views)]
        pairs = [(i, j) for i, j in clip_pairs(len(z), self.cfg.pairing) if i < j]
        loss = torch.stack([nt_xent(z[i], z[j], self.cfg.temperature) for i, j in pairs]).mean()
        return {"loss": loss}
