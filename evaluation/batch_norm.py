"""Batch norm of an encoder pretrained without running statistics (DPC's
``track_running_stats=False``): every BN normalises by its batch, so a frozen encoder's feature of
a clip would depend on the clips it is batched with (the evaluation's batches follow the class
order of the lists). Before any evaluation reads it, such an encoder gets running statistics
back: estimated as population statistics over training clips by fvcore's precise BN
(``update_bn_stats``; Wu and Johnson 2021, "Rethinking Batch in BatchNorm", sec. 3) for the
frozen protocols, and learnt from zero by fine-tuning, as DPC's ``eval/model_3d_lc.py`` builds its
backbone with ``track_running_stats=True``.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batch_norms(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def lacks_running_statistics(module: nn.Module) -> bool:
    return any(not m.track_running_stats for m in batch_norms(module))


def track_running_statistics(module: nn.Module) -> nn.Module:
    """Every BN of ``module`` keeps running statistics again, from mean 0 and variance 1."""
    for m in batch_norms(module):
        if not m.track_running_stats:
            m.track_running_stats = True
            p = m.weight if m.weight is not None else None
            kw = {"device": p.device} if p is not None else {}
            m.register_buffer("running_mean", torch.zeros(m.num_features, **kw))
            m.register_buffer("running_var", torch.ones(m.num_features, **kw))
            m.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, **kw))
    return module


def with_population_statistics(encoder: nn.Module, batches: Iterator[torch.Tensor], num_batches: int) -> nn.Module:
    """A copy of ``encoder`` whose BNs have running statistics, estimated over ``num_batches`` of
    ``batches`` (model inputs) with fvcore's ``update_bn_stats``; returned in evaluation mode."""
    from fvcore.nn.precise_bn import update_bn_stats
    enc = track_running_statistics(copy.deepcopy(encoder)).train()
    update_bn_stats(enc, batches, num_batches)
    return enc.eval()
