"""Is one method's top-1 different from another's, given how few test videos and seeds there are?

``compare --against REF`` pairs each measured setting with REF's setting of the same protocol,
data and encoder, video by video: both were tested on the same videos of the same splits, so
the difference of their accuracies is a mean over videos of ``correct_A - correct_REF``. Its 95%
interval comes from a paired bootstrap (Efron & Tibshirani 1993, ch. 16) that resamples, in each
draw, the seeds (with replacement) and, within each seed and split, the test videos (with
replacement, the same videos for both methods). A difference whose interval contains zero is
"not significant": this test set and these seeds cannot tell the two apart. The per-video
predictions are the runs' ``predictions.json`` (:func:`benchmark.run.write_predictions`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

# seed -> split -> video -> 1 if predicted right else 0
Correctness = Dict[int, Dict[str, Dict[str, int]]]
DRAWS = 10000
CHUNK = 500  # draws resampled at once (memory: CHUNK x test videos indices)


def correctness(runs: List[Dict], protocol: str) -> Optional[Correctness]:
    """Each run's (``{"seed", "folder"}``) per-video correctness under ``protocol``, keyed by its
    seed; None where a run kept no predictions for it."""
    out: Correctness = {}
    for run in runs:
        path = Path(run["folder"]) / "predictions.json"
        try:
            splits = json.loads(path.read_text())[protocol]["splits"]
        except (OSError, KeyError, json.JSONDecodeError):
            return None
        out[int(run["seed"])] = {split: {v: int(p == y) for v, p, y in zip(s["videos"], s["predicted"], s["labels"])}
                                 for split, s in splits.items()}
    return out


def paired_differences(a: Correctness, ref: Correctness) -> List[List[np.ndarray]]:
    """Per shared seed, per shared split, ``correct_a - correct_ref`` over the shared videos."""
    per_seed = []
    for seed in sorted(set(a) & set(ref)):
        splits = sorted(set(a[seed]) & set(ref[seed]))
        diffs = []
        for split in splits:
            videos = sorted(set(a[seed][split]) & set(ref[seed][split]))
            if videos:
                diffs.append(np.array([a[seed][split][v] - ref[seed][split][v] for v in videos], dtype=np.float64))
        if diffs:
            per_seed.append(diffs)
    return per_seed


def paired_bootstrap(a: Correctness, ref: Correctness, draws: int = DRAWS, seed: int = 0) -> Optional[Dict]:
    """The difference in top-1 points (a - ref: the mean over seeds of the mean over splits) and
    its 95% percentile interval; None when the two share no seed, split and video."""
    per_seed = paired_differences(a, ref)
    if not per_seed:
        return None
    rng = np.random.default_rng(seed)
    point = float(np.mean([np.mean([d.mean() for d in splits]) for splits in per_seed])) * 100
    seed_stat = np.empty((len(per_seed), draws))  # each seed's split-mean difference, per draw
    for i, splits in enumerate(per_seed):
        per_split = np.empty((len(splits), draws))
        for j, d in enumerate(splits):
            for lo in range(0, draws, CHUNK):
                n = min(CHUNK, draws - lo)
                per_split[j, lo:lo + n] = d[rng.integers(0, len(d), (n, len(d)))].mean(1)
        seed_stat[i] = per_split.mean(0)
    picked = rng.integers(0, len(per_seed), (draws, len(per_seed)))  # seeds resampled with replacement
    boot = seed_stat[picked, np.arange(draws)[:, None]].mean(1) * 100
    low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    return {"diff": point, "diff_ci95_low": low, "diff_ci95_high": high, "significant": bool(low > 0 or high < 0),
            "paired_seeds": len(per_seed), "paired_videos": int(sum(len(d) for splits in per_seed for d in splits))}
