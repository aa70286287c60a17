"""Linear probe on cached frozen features (standardised), SGD with a cosine schedule.

Every training clip is a sample; at test time the softmax of each clip is averaged
per video (:func:`evaluation.aggregate.average_per_video`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from evaluation.aggregate import average_per_video, scored, top1
from evaluation.protocols import register_protocol


def train_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, lr: float, batch_size: int,
                 weight_decay: float = 0.0, seed: int = 0) -> torch.nn.Linear:
    """A linear classifier trained by SGD on ``x``; its initial weights and its batches come from
    ``seed`` alone, not from the global RNG, whose state depends on what ran before (a run whose
    features came from the cache would otherwise probe from other initial weights)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = torch.nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps = epochs * max(1, (len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return clf


def linear_probe(features: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor, test_idx: torch.Tensor,
                 num_classes: int, epochs: int = 100, lr: float = 0.1, batch_size: int = 256,
                 weight_decay: float = 0.0, seed: int = 0) -> float:
    """Top-1 (%) of a linear classifier trained on ``features[train_idx]`` (``[N, K, D]``)."""
    probs = linear_probe_scores(features, labels, train_idx, test_idx, num_classes, epochs, lr, batch_size,
                                weight_decay, seed)
    return top1(probs, labels[test_idx])


def linear_probe_scores(features: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor, test_idx: torch.Tensor,
                        num_classes: int, epochs: int = 100, lr: float = 0.1, batch_size: int = 256,
                        weight_decay: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``[len(test_idx), C]``: the probe's class probabilities per test video (its clips' softmax
    averaged)."""
    k = features.shape[1]
    xtr = features[train_idx].flatten(0, 1)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr = (xtr - mean) / std
    ytr = labels[train_idx].repeat_interleave(k)
    clf = train_linear(xtr, ytr, num_classes, epochs, lr, batch_size, weight_decay, seed)
    with torch.no_grad():
        xte = (features[test_idx].flatten(0, 1) - mean) / std
        probs = F.softmax(clf(xte), dim=1)
        vid = torch.arange(len(test_idx)).repeat_interleave(k)
        return average_per_video(probs, vid, len(test_idx))


@register_protocol("linear")
def linear_protocol(encoder, cfg, data):
    """``eval.linear``: a linear probe per split on the frozen encoder's features (every clip of a
    train video a sample; probabilities averaged per test video)."""
    f = data.frozen_features(encoder)
    paths = [r.path for r in data.videos()]
    out = {}
    for split, (train, test) in f["rows"].items():
        probs = linear_probe_scores(f["features"], f["labels"], train, test, data.num_classes, cfg.epochs, cfg.lr,
                                    cfg.batch_size, cfg.weight_decay, data.seed)
        out[split] = scored(probs, f["labels"][test], [paths[i] for i in test])
    return out
