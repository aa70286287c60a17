"""One exception type for bad user input: the CLI prints its message on one line and exits 2."""
from __future__ import annotations

from typing import Iterable


class UserError(Exception):
    """A problem with the user's input (config, paths, data), reported without a traceback."""


def unknown_choice(kind: str, value: object, choices: Iterable[object]) -> UserError:
    return UserError(f"unknown {kind} '{value}'; valid choices: {', '.join(map(str, sorted(choices)))}")


def check_minimums(prefix: str, settings, minimums: dict) -> None:
    """Raise, in one line naming the key, its value and the valid range, for the first of
    ``minimums`` (a dotted key under ``settings`` -> its least value) that ``settings`` falls below."""
    from omegaconf import OmegaConf
    for key, least in minimums.items():
        value = OmegaConf.select(settings, key)
        if value < least:
            raise UserError(f"bad {prefix}.{key} {value}: must be >= {least}")


def check_positive(prefix: str, settings, keys) -> None:
    """Raise, in one line naming the key and its value, for the first of ``keys`` (dotted, under
    ``settings``) that is not above 0: learning rates."""
    from omegaconf import OmegaConf
    for key in keys:
        value = OmegaConf.select(settings, key)
        if not value > 0:
            raise UserError(f"bad {prefix}.{key} {value}: must be > 0")
