"""rho-BYOL (Feichtenhofer et al. 2021, eq. 2; Grill et al. 2020): online projector and
predictor regress the momentum target's projection of every other clip of the video."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from methods.base import clip_pairs, register_method
from methods.heads import MLPHead
from methods.losses import byol_loss
from methods.rho_common import MomentumTargetConfig, RhoMethod


@dataclass
class RhoBYOLConfig(MomentumTargetConfig):
    pairing: str = MISSING
    predictor_hidden_dim: int = MISSING
    predictor_lr_scale: float = MISSING  # the predictor's learning rate over the trainer's


@register_method
class RhoBYOL(RhoMethod):
    name = "rho_byol"
    Config = RhoBYOLConfig

    def __init__(self, encoder, cfg, num_classes=None):
        self.momentum_base = cfg.momentum
        super().__init__(encoder, cfg, num_classes)
        self.predictor = MLPHead(cfg.out_dim, cfg.predictor_hidden_dim, cfg.out_dim, 2, cfg.mlp_bn)
        self.make_target("encoder", "target_encoder")
        self.make_target("projector", "target_projector")

    def param_groups(self):
        """The predictor at ``predictor_lr_scale`` times the rate of the rest (1: BYOL, Grill et al.
        2020). A predictor that adapts faster than the encoder is argued to keep non-contrastive
        learning from collapsing (Tian et al. 2021, "Understanding self-supervised learning dynamics
        without contrastive pairs"; SimSiam, Chen & He 2021, sec. 4.2, fixes its predictor's rate)."""
        head = set(map(id, self.predictor.parameters()))
        rest = [p for p in self.parameters() if id(p) not in head]
        return [{"params": rest, "lr_scale": 1.0},
                {"params": list(self.predictor.parameters()), "lr_scale": self.cfg.predictor_lr_scale}]

    def forward(self, views, labels=None):
        p = [self.predictor(z) for z in self.embed(views)]
        with torch.no_grad():
            t = self.target_embed(views)
        loss = torch.stack([byol_loss(p[i], t[j]) for i, j in clip_pairs(len(p), self.cfg.pairing)]).mean()
        return {"loss": loss}
