"""No pretraining: the encoder stays at its random initialisation (the floor)."""
from __future__ import annotations

from methods.base import Method


class RandomInit(Method):
    trains = False

    def forward(self, views, labels=None):
        raise RuntimeError("method 'random' has no pretraining step")
