"""One exception type for bad user input: the CLI prints its message on one line and exits 2."""
from __future__ import annotations

from typing import Iterable


class UserError(Exception):
    """A problem with the user's input (config, paths, data), reported without a traceback."""


def unknown_choice(kind: str, value: object, choices: Iterable[object]) -> UserError:
    return UserError(f"unknown {kind} '{value}'; valid choices: {', '.join(map(str, sorted(choices)))}")
