"""Nearest-neighbour retrieval: test videos query train videos by cosine similarity.

Video features are the mean of their clips' features, L2-normalised. R@k is the share of
queries with a same-class video among their k nearest train videos (the video-retrieval
protocol of Xu et al. 2019 / CoCLR); kNN top-1 is a similarity-weighted vote of the k
nearest neighbours (``votes``, ``[N_test, C]``, also returned).
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from evaluation.aggregate import per_video
from evaluation.protocols import register_protocol


def knn_retrieval(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                  recall_at: Sequence[int] = (1, 5, 10, 20), k: int = 10, num_classes: int | None = None) -> Dict[str, float]:
    tr, te = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    sim = te @ tr.t()
    kmax = min(max(max(recall_at), k), len(tr))
    top_sim, top_idx = sim.topk(kmax, dim=1)
    hits = train_y[top_idx] == test_y[:, None]
    out = {f"R@{r}": 100.0 * float(hits[:, :min(r, kmax)].any(dim=1).float().mean()) for r in recall_at}
    c = num_classes or int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(len(te), c).scatter_add_(1, train_y[top_idx[:, :k]], top_sim[:, :k].clamp_min(0) + 1e-6)
    out["top1"] = 100.0 * float((votes.argmax(1) == test_y).float().mean())
    out["votes"] = votes
    return out


@register_protocol("knn")
def knn_protocol(encoder, cfg, data):
    """``eval.knn``: per split, test videos query train videos (features averaged over a video's clips)."""
    f = data.frozen_features(encoder)
    paths = [r.path for r in data.videos()]
    out = {}
    for split, (train, test) in f["rows"].items():
        found = knn_retrieval(f["features"][train].mean(1), f["labels"][train], f["features"][test].mean(1),
                              f["labels"][test], list(cfg.recall_at), cfg.k, data.num_classes)
        votes = found.pop("votes")
        out[split] = {**found, "per_video": per_video([paths[i] for i in test], f["labels"][test], votes.argmax(1))}
    return out
