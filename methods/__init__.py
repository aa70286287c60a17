"""Methods under one interface: ``build_method(name, encoder, **overrides)``.

``forward(views: list[Tensor]) -> dict`` with at least ``"loss"``;
``after_optimizer_step(step, total)`` after each optimizer step (momentum, queues).
"""
from __future__ import annotations

from typing import Dict, Type

from torch import nn

from methods.base import Method
from methods.random_init import RandomInit
from methods.rho_byol import RhoBYOL
from methods.rho_moco import RhoMoCo
from methods.rho_simclr import RhoSimCLR
from methods.rho_swav import RhoSwAV
from methods.supervised import Supervised
from methods.vdim import VDIM

METHODS: Dict[str, Type[Method]] = {
    "vdim": VDIM, "rho_simclr": RhoSimCLR, "rho_moco": RhoMoCo, "rho_byol": RhoBYOL,
    "rho_swav": RhoSwAV, "supervised": Supervised, "random": RandomInit,
}


def method_config(name: str, **overrides):
    """The method's YAML defaults (configs/method/<name>.yaml) with ``overrides`` merged in."""
    from omegaconf import OmegaConf, open_dict

    from benchmark.cli_common import group_config

    method = group_config("method", name)
    with open_dict(method):
        for key, value in overrides.items():
            OmegaConf.update(method, key, value, merge=True)
    return method


def build_method(name: str, encoder: nn.Module, num_classes: int | None = None, **overrides) -> Method:
    if name not in METHODS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("method", name, METHODS)
    cfg = overrides.pop("cfg", None) or method_config(name, **overrides)
    if name == "supervised":
        return Supervised(encoder, cfg, num_classes or 8)
    return METHODS[name](encoder, cfg)
