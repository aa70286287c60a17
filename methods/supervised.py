"""Supervised training of the same encoder on labels: the ceiling of the comparison."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from methods.base import Method


class Supervised(Method):
    def __init__(self, encoder, cfg, num_classes: int = 8):
        super().__init__(encoder, cfg)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(encoder.global_dim, num_classes))

    def forward(self, views, labels=None):
        logits = self.classifier(self.encoder(views[0])["global"]).float()
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "train_acc": (logits.argmax(1) == labels).float().mean().detach()}
