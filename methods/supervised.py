"""Supervised training of the same encoder on labels: the ceiling of the comparison.

One random clip per video (the rho-clip sampler at rho 1), a dropout and linear classifier on
the encoder's global feature, cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from benchmark.config import RhoClipConfig
from benchmark.data.samplers import RhoClips
from methods.base import Method, MethodConfig, register_method


@dataclass
class SupervisedConfig(MethodConfig):
    clips: RhoClipConfig = field(default_factory=RhoClipConfig)
    dropout: float = MISSING


@register_method
class Supervised(Method):
    name = "supervised"
    Config = SupervisedConfig
    uses_labels = True

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        return RhoClips.of(cfg.clips)

    def __init__(self, encoder, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(encoder.global_dim, num_classes or 8))

    def forward(self, views, labels=None):
        logits = self.classifier(self.encoder(views[0])["global"]).float()
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "train_acc": (logits.argmax(1) == labels).float().mean().detach()}
