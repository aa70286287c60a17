"""No pretraining: the encoder stays at its random initialisation (the floor)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from methods.base import Method, register_method


@dataclass
class RandomInitConfig:
    name: str = MISSING
    augment: Any = None  # no clips are augmented; a dataset's augmentation file may still set it


@register_method
class RandomInit(Method):
    name = "random"
    Config = RandomInitConfig
    pretrains = False

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        return None

    def forward(self, views, labels=None):
        raise RuntimeError("method 'random' has no pretraining step")
