"""Test-time aggregation: class probabilities averaged per video, and mean/std over splits."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch


def average_per_video(probs: torch.Tensor, video_index: torch.Tensor, num_videos: Optional[int] = None) -> torch.Tensor:
    """``probs [N_clips, C]`` grouped by ``video_index [N_clips]`` -> ``[N_videos, C]`` means
    (SlowFast / VDIM sec. 4.1: probabilities averaged over all samples of a video)."""
    n = int(video_index.max()) + 1 if num_videos is None else num_videos
    sums = torch.zeros(n, probs.shape[1], dtype=probs.dtype).index_add_(0, video_index, probs)
    counts = torch.zeros(n, dtype=probs.dtype).index_add_(0, video_index, torch.ones_like(video_index, dtype=probs.dtype))
    return sums / counts.clamp_min(1).unsqueeze(1)


def top1(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((probs.argmax(1) == labels).float().mean())


def video_id(path: str) -> str:
    """``class/video.avi``: a test video's name, the same on every machine that holds the dataset."""
    return "/".join(Path(path).parts[-2:])


def per_video(paths: Sequence[str], labels: torch.Tensor, predicted: torch.Tensor) -> Dict[str, List]:
    """One split's per-video predictions as ``predictions.json`` keeps them, for paired
    comparisons between runs (``python -m benchmark compare --against``)."""
    return {"videos": [video_id(p) for p in paths], "labels": [int(v) for v in labels],
            "predicted": [int(v) for v in predicted]}


def scored(probs: torch.Tensor, labels: torch.Tensor, paths: Sequence[str]) -> Dict:
    """A split's result from per-video class scores: top-1 and the per-video predictions."""
    return {"top1": top1(probs, labels), "per_video": per_video(paths, labels, probs.argmax(1))}


def split_summary(per_split: Dict[int, Optional[float]]) -> Dict:
    """Per-split values, their mean and (population) standard deviation; ``None`` = not run."""
    vals = [v for v in per_split.values() if v is not None]
    mean = sum(vals) / len(vals) if vals else None
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)) if vals else None
    return {"splits": {str(k): v for k, v in per_split.items()}, "mean": mean, "std": std}
