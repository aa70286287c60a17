"""One feature-tap mechanism for every backbone: an explicit loop over named stages.

A backbone is an ordered set of named stages and a ``global_head``; ``forward(video)``
runs the stages in order, keeps every stage's output under its name and adds
``"global"`` (``[B, D]``). VDIM's losses and the rho-methods' heads read the maps they
need by name, whatever the backbone.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Tuple

import torch
from torch import nn


class FeatureEncoder(nn.Module):
    def __init__(self, name: str, stages: "OrderedDict[str, nn.Module]", global_head: nn.Module,
                 global_dim: int, input_shape: Tuple[int, int, int], strict_input: bool = False,
                 channels_last_routes: bool = False):
        super().__init__()
        self.name = name
        self.stages = nn.ModuleDict(stages)
        self.global_head = global_head
        self.global_dim = global_dim
        self.input_shape = tuple(input_shape)  # (T, H, W) the encoder was built for
        self.strict_input = strict_input
        # its modules take encoders.channels_last_ops's CPU routes when trained channels-last
        self.channels_last_routes = channels_last_routes

    @property
    def feature_names(self):
        return list(self.stages.keys()) + ["global"]

    def check_input(self, video: torch.Tensor) -> None:
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"encoder '{self.name}' expects [B, 3, T, H, W], got {list(video.shape)}")
        if self.strict_input and tuple(video.shape[2:]) != self.input_shape:
            t, h, w = self.input_shape
            raise ValueError(f"encoder '{self.name}' expects input [B, 3, {t}, {h}, {w}], got {list(video.shape)}")

    def forward(self, video: torch.Tensor) -> Dict[str, torch.Tensor]:
        self.check_input(video)
        out: Dict[str, torch.Tensor] = {}
        x = video
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        out["global"] = self.global_head(x)
        return out


class GlobalAvgPool(nn.Sequential):
    """Global average pooling over time and space: ``[B, C, T, H, W] -> [B, C]``."""

    def __init__(self):
        super().__init__(nn.AdaptiveAvgPool3d(1), nn.Flatten(1))
