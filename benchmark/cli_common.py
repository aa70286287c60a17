"""What every Hydra subcommand shares: the config path (:mod:`benchmark.compose`) and the error boundary."""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Callable

from benchmark.compose import CONFIG_DIR, group_choices, group_config  # noqa: F401  (the CLI's names for them)
from benchmark.errors import UserError

log = logging.getLogger("benchmark")


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
