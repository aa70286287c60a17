"""Video datasets: a deterministic pretraining stream and a per-video evaluation dataset.

Both read the split lists of :mod:`benchmark.data.splits` and decode with PyAV
(:mod:`benchmark.data.decode`), one decode per sample for all of its views or clips.

:class:`PretrainStream` is an ``IterableDataset`` sharded across ranks and workers. Sample
``b`` of rank ``r`` at step ``s`` is video ``perm_e[i mod N]`` with ``i = s*B*W + r*B + b``
and its augmentation RNG seeded from ``(seed, i)``; worker ``w`` of ``K`` builds the
batches of steps ``s = w (mod K)``, and the DataLoader's round-robin over workers returns
them in step order. The data position is therefore just the step, and a resumed run sees
exactly the batches an uninterrupted one would.

A corrupt, empty or undecodable video is skipped: the sample takes the next video of the
permutation, and the path is appended to ``skipped_log`` (one line per failure, safe
across worker processes) so the run can count it into result.json.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from benchmark.data.decode import VideoDecodeError, decode_frames, probe
from benchmark.data.samplers import AtFrameRate
from benchmark.data.splits import VideoRecord

log = logging.getLogger(__name__)

# A sample builder turns (num_frames, rng) into index arrays, then (frames, rng) into views.
IndexFn = Callable[[int, np.random.Generator], List[np.ndarray]]
ViewFn = Callable[[torch.Tensor, int], torch.Tensor]  # (uint8 [T, H, W, 3], view k) -> float [3, T, H, W]


def record_skip(skipped_log: Optional[str], path: str, err: Exception) -> None:
    log.warning("skipping unreadable video %s (%s)", path, err)
    if skipped_log:
        with open(skipped_log, "a") as f:
            f.write(f"{path}\n")


def count_skipped(skipped_log: Optional[str]) -> int:
    """Distinct videos skipped so far in this run."""
    if not skipped_log or not os.path.exists(skipped_log):
        return 0
    return len({ln for ln in Path(skipped_log).read_text().split("\n") if ln})


def seed_transforms(rng: np.random.Generator) -> None:
    """Seed torch's CPU generator, which torchvision's v2 transforms draw from, from the sample's
    ``rng``. Only the CPU one: ``torch.manual_seed`` also queues a seed for every accelerator
    backend, recording a stack trace each time (0.2 ms a sample), and would reset the CUDA
    generator of a trainer that loads data in its own process."""
    torch.default_generator.manual_seed(int(rng.integers(2**62)))


def load_views(path: str, index_fn: IndexFn, view_fn: ViewFn, rng: np.random.Generator) -> List[torch.Tensor]:
    """Decode once the union of all views' frames, then augment each view independently. An
    :class:`AtFrameRate` index function also gets the video's frame rate."""
    n, fps = probe(path)
    views = index_fn.at(n, fps, rng) if isinstance(index_fn, AtFrameRate) else index_fn(n, rng)
    flat = np.concatenate(views)
    frames = decode_frames(path, flat)
    out, at = [], 0
    for k, v in enumerate(views):
        out.append(view_fn(frames[at:at + len(v)], k))
        at += len(v)
    return out


class PretrainStream(IterableDataset):
    """Infinite-by-steps stream of collated batches ``{"views": [V x [B,3,T,H,W]], "label": [B]}``."""

    def __init__(self, records: Sequence[VideoRecord], index_fn: IndexFn, view_fn: ViewFn, batch_size: int,
                 steps: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1,
                 skipped_log: Optional[str] = None):
        if not records:
            raise ValueError("no videos to train on")
        self.records, self.index_fn, self.view_fn = list(records), index_fn, view_fn
        self.batch_size, self.steps, self.seed, self.start_step = batch_size, steps, seed, start_step
        self.rank, self.world_size, self.skipped_log = rank, world_size, skipped_log
        self._bad: set = set()

    def _video_for(self, i: int) -> int:
        n = len(self.records)
        epoch, pos = divmod(i, n)
        return int(np.random.default_rng([self.seed, epoch]).permutation(n)[pos])

    def sample(self, i: int) -> Dict:
        rng = np.random.default_rng([self.seed, 1, i])
        seed_transforms(rng)
        v = self._video_for(i)
        for attempt in range(len(self.records)):
            rec = self.records[(v + attempt) % len(self.records)]
            if rec.path in self._bad:
                continue
            try:
                return {"views": load_views(rec.path, self.index_fn, self.view_fn, rng), "label": rec.label}
            except VideoDecodeError as e:
                self._bad.add(rec.path)
                record_skip(self.skipped_log, rec.path, e)
        raise RuntimeError("every video in the dataset failed to decode")

    def batch(self, step: int) -> Dict:
        first = (step * self.world_size + self.rank) * self.batch_size
        samples = [self.sample(first + b) for b in range(self.batch_size)]
        views = [torch.stack([s["views"][k] for s in samples]) for k in range(len(samples[0]["views"]))]
        return {"views": views, "label": torch.tensor([s["label"] for s in samples]), "step": step}

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        torch.set_num_threads(1) if info else None
        for step in range(self.start_step, self.steps):
            if (step - self.start_step) % nw == wid:
                yield self.batch(step)


class VideoClipsDataset(Dataset):
    """Per video, a fixed set of clips ``[K, 3, T, H, W]`` for evaluation (deterministic).

    Returns ``None`` for an unreadable video; :func:`collate_skip_none` drops it and the
    path goes to ``skipped_log``.
    """

    def __init__(self, records: Sequence[VideoRecord], index_fn: IndexFn, view_fn: ViewFn,
                 skipped_log: Optional[str] = None, seed: int = 0):
        self.records, self.index_fn, self.view_fn = list(records), index_fn, view_fn
        self.skipped_log, self.seed = skipped_log, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rec = self.records[i]
        rng = np.random.default_rng([self.seed, 2, i])
        seed_transforms(rng)
        try:
            clips = load_views(rec.path, self.index_fn, self.view_fn, rng)
        except VideoDecodeError as e:
            record_skip(self.skipped_log, rec.path, e)
            return None
        return {"clips": torch.stack(clips), "label": rec.label, "index": i}


def collate_skip_none(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return {"clips": torch.stack([b["clips"] for b in batch]),
            "label": torch.tensor([b["label"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch])}
