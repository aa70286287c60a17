"""What the four rho-methods share (Feichtenhofer et al. 2021, sec. 3): rho clips per video
through one backbone and an MLP projector."""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from methods.base import Method
from methods.heads import MLPHead


class RhoMethod(Method):
    def __init__(self, encoder: nn.Module, cfg, layers: int | None = None, hidden: int | None = None,
                 out: int | None = None):
        super().__init__(encoder, cfg)
        self.projector = MLPHead(encoder.global_dim, hidden or cfg.hidden_dim, out or cfg.out_dim,
                                 layers or cfg.mlp_layers, cfg.mlp_bn)

    def embed(self, views: Sequence[torch.Tensor], encoder=None, projector=None) -> List[torch.Tensor]:
        """Projector outputs of every clip; clips go through the backbone as one batch."""
        encoder, projector = encoder or self.encoder, projector or self.projector
        n = views[0].shape[0]
        z = projector(encoder(torch.cat(list(views)))["global"])
        return list(z.float().split(n))
