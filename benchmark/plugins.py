"""``VDIM_BENCH_PLUGINS``: Python modules imported before any config is composed.

A comma-separated list of importable module names (on ``PYTHONPATH``). A plugin adds a method
by defining a :class:`methods.base.Method` subclass under :func:`methods.base.register_method`
and storing its config under Hydra's ConfigStore group ``method`` (or by a YAML file in
``configs/method/``); ``method=<name>`` then picks it like a built-in method. The same works for
anything else that registers itself on import.
"""
from __future__ import annotations

import importlib
import os

from benchmark.errors import UserError

ENV = "VDIM_BENCH_PLUGINS"


def plugin_names() -> list:
    return [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]


def load_plugins() -> None:
    for name in plugin_names():
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError(f"{ENV}: cannot import plugin '{name}' ({e})") from e
