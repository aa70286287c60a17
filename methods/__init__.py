"""Methods under one interface: ``build_method(name, encoder, **overrides)``.

Every module of this package is imported here, and each registers its method with
:func:`methods.base.register_method`: adding a method is one module here and one YAML under
``configs/method/`` (a plugin outside the tree: ``VDIM_BENCH_PLUGINS``, :mod:`benchmark.plugins`).
``forward(views: list[Tensor], labels) -> dict`` with at least ``"loss"``;
``after_optimizer_step(step, total)`` after each optimizer step (momentum, queues).
"""
from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from methods.base import METHODS, Method, register_method  # noqa: F401  (the package's interface)

NOT_METHODS = {"base", "heads", "losses"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in NOT_METHODS:
        importlib.import_module(f"{__name__}.{_module.name}")


def method_class(name: str):
    """The registered class of method ``name``; an unknown name fails in one line naming the choices."""
    if name not in METHODS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("method", name, METHODS)
    return METHODS[name]


def method_config(name: str, **overrides):
    """The method's YAML defaults (``configs/method/<name>.yaml``) with ``overrides`` merged in."""
    from omegaconf import OmegaConf, open_dict

    from benchmark.compose import group_config

    method = group_config("method", name)
    with open_dict(method):
        for key, value in overrides.items():
            OmegaConf.update(method, key, value, merge=True)
    return method


def build_method(name: str, encoder: nn.Module, num_classes: int | None = None, **overrides) -> Method:
    cls = method_class(name)
    cfg = overrides.pop("cfg", None) or method_config(name, **overrides)
    return cls(encoder, cfg, num_classes)
