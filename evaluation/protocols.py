"""The protocol registry: ``eval.protocols`` names entries of :data:`PROTOCOLS`.

A protocol is one function ``(encoder, cfg, data) -> {split: {"top1": ..., ...}}``: the encoder
to evaluate (left unchanged), its own config (``eval.<name>``) and the evaluation data
(:class:`evaluation.data.EvalData`). Every other key of a split's dict (kNN's ``R@k``) is
summarised over the splits beside ``top1``, except ``per_video`` (the split's test videos, labels
and predicted classes, :func:`evaluation.aggregate.per_video`), which goes to the run's
``predictions.json``. ``describe(cfg, data)`` gives the result entry's
extra fields (its ``test_protocol`` at least); ``check(cfg)`` fails on bad settings before any
work. A new protocol is one module under ``evaluation/`` using :func:`register_protocol`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional


def default_description(cfg, data) -> Dict:
    return {"test_protocol": data.test_protocol}


@dataclass(frozen=True)
class Protocol:
    name: str
    run: Callable
    describe: Callable = default_description
    check: Optional[Callable] = None


PROTOCOLS: Dict[str, Protocol] = {}


def register_protocol(name: str, describe: Callable = default_description, check: Optional[Callable] = None):
    def add(run: Callable) -> Callable:
        PROTOCOLS[name] = Protocol(name, run, describe, check)
        return run
    return add
