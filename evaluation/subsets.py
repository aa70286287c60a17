"""The sample-sensitivity protocol (Thoker et al. 2022, SEVERE, sec. 4.2: the number of labelled
examples is one of the axes on which video SSL rankings change): each split's training list cut
to a fixed, class-balanced subset before any protocol reads it.

The subset depends only on the list and ``eval.subset_seed``, never on the run's seed, so every
method and every pretraining seed is evaluated on the same videos.
"""
from __future__ import annotations

from collections import defaultdict
from typing import List, Optional, Sequence

import numpy as np

from benchmark.data.splits import VideoRecord
from benchmark.errors import UserError


def check_subset_request(total: Optional[int], per_class: Optional[int], num_classes: int) -> None:
    """Bad requests in one line, before any work: both given, or fewer than one video a class."""
    if total is not None and per_class is not None:
        raise UserError(f"eval.train_examples={total} and eval.train_examples_per_class={per_class}: give one of them")
    if per_class is not None and per_class < 1:
        raise UserError(f"bad eval.train_examples_per_class {per_class}: must be >= 1")
    if total is not None and total < num_classes:
        raise UserError(f"bad eval.train_examples {total}: must be >= {num_classes} (one video a class)")


def class_balanced_subset(records: Sequence[VideoRecord], num_classes: int, total: Optional[int] = None,
                          per_class: Optional[int] = None, seed: int = 0) -> List[VideoRecord]:
    """``per_class`` videos of every class, or ``total`` spread as evenly as the classes allow
    (``total // C`` each, one more for ``total % C`` classes drawn by ``seed``); a class with
    fewer videos gives all it has. Within a class the videos are drawn by ``seed`` from the list
    sorted by path, so the subset does not depend on the list's order. Returned in list order."""
    check_subset_request(total, per_class, num_classes)
    if total is None and per_class is None:
        return list(records)
    rng = np.random.default_rng(seed)
    by_class = defaultdict(list)
    for r in sorted(records, key=lambda r: r.path):
        by_class[r.label].append(r)
    if per_class is not None:
        quota = {c: per_class for c in range(num_classes)}
    else:
        extra = set(rng.permutation(num_classes)[: total % num_classes].tolist())
        quota = {c: total // num_classes + (c in extra) for c in range(num_classes)}
    chosen = set()
    for c in range(num_classes):
        videos = by_class.get(c, [])
        picked = rng.permutation(len(videos))[: quota[c]]
        chosen.update(videos[i].path for i in picked)
    return [r for r in records if r.path in chosen]


def describe_subset(total: Optional[int], per_class: Optional[int], seed: int) -> Optional[str]:
    """``3 per class (subset seed 0)`` / ``24 videos (subset seed 0)``; None for the full list."""
    if per_class is not None:
        return f"{per_class} per class (subset seed {seed})"
    if total is not None:
        return f"{total} videos (subset seed {seed})"
    return None
