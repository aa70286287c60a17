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

    def embed(self, views: Sequence[torch.Tensor], encoder=None, projector=None,
              batched: bool = False) -> List[torch.Tensor]:
        """Projector outputs of every clip.

        The online network sees each clip as its own batch, as the reference does (SlowFast's
        ``ContrastiveModel`` runs the backbone once per clip), so batch-norm statistics are
        per clip. ``batched=True`` sends all clips through as one batch, as the reference
        computes the momentum target's keys (``compute_key_feat``, batched inference).
        Per-clip batches are also faster on CPU: oneDNN's 3-D convolutions lose more to a
        doubled batch than a second call costs (``python -m benchmark perf``)."""
        encoder, projector = encoder or self.encoder, projector or self.projector
        if batched:
            z = projector(encoder(torch.cat(list(views)))["global"])
            return list(z.float().split(views[0].shape[0]))
        return [projector(encoder(v)["global"]).float() for v in views]
