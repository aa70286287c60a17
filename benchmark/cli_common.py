"""What every Hydra subcommand shares: the config path, schema registration, and the error boundary."""
from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from benchmark.config import register_schemas
from benchmark.errors import UserError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
register_schemas()
log = logging.getLogger("benchmark")


def group_choices(group: str) -> list:
    """The options of a config group: ``configs/<group>/*.yaml`` without the ``_``-prefixed partials."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if not p.stem.startswith("_"))


def group_config(group: str, name: str):
    """``configs/<group>/<name>.yaml`` as the run config composes it: its schema from its
    defaults list, every default filled in. Inside a running Hydra app (``run``, ``perf``) it
    reuses that app's initialised config search path, which is this same folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    if GlobalHydra.instance().is_initialized():
        return compose("run", overrides=[f"{group}={name}"])[group]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("run", overrides=[f"{group}={name}"])[group]


def debug_enabled() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("VDIM_BENCH_DEBUG") == "1"


def user_errors_exit(task: Callable) -> Callable:
    """Turn a :class:`UserError` raised inside a Hydra task into one line on stderr and exit 2."""

    @functools.wraps(task)
    def wrapped(cfg):
        try:
            return task(cfg)
        except UserError as e:
            if debug_enabled():
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapped
