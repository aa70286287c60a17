"""Frozen-encoder features, extracted once and cached on disk.

The cache key is a hash of the encoder's weights (so it changes with the checkpoint)
and of the feature config (encoder input, clips, crops, stride, colour, dataset spec).
One pass covers every video of every requested split: the linear probe and retrieval of
all three splits then train on the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark.checkpoint import atomic_write_bytes
from benchmark.data.datasets import VideoClipsDataset, collate_skip_none

log = logging.getLogger(__name__)


def weights_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


@torch.no_grad()
def extract(encoder, records, index_fn, view_fn, device, batch_size: int, num_workers: int, skipped_log: Optional[str],
            precision_ctx, progress: bool = True) -> Dict[str, torch.Tensor]:
    """``{"features": [N, K, D], "labels": [N], "valid": [N] bool}`` in ``records`` order."""
    encoder.eval().to(device)
    ds = VideoClipsDataset(records, index_fn, view_fn, skipped_log)
    loader = DataLoader(ds, batch_size=max(1, batch_size), num_workers=num_workers, collate_fn=collate_skip_none)
    feats, valid = None, torch.zeros(len(records), dtype=torch.bool)
    labels = torch.tensor([r.label for r in records])
    for batch in tqdm(loader, desc="features", disable=not progress, leave=False):
        if batch is None:
            continue
        clips = batch["clips"]  # [B, K, 3, T, H, W]
        b, k = clips.shape[:2]
        with precision_ctx:
            g = encoder(clips.flatten(0, 1).to(device))["global"].float().cpu()
        if feats is None:
            feats = torch.zeros(len(records), k, g.shape[1])
        feats[batch["index"]] = g.view(b, k, -1)
        valid[batch["index"]] = True
    if feats is None:
        raise RuntimeError("no video could be decoded for feature extraction")
    return {"features": feats, "labels": labels, "valid": valid}


def cached_features(cache_dir: Path, key_parts: Dict, encoder, records: List, weights: Optional[str] = None,
                    **kw) -> Dict[str, torch.Tensor]:
    """:func:`extract`, cached on disk under a key of ``key_parts``, the encoder's weights (their
    :func:`weights_hash`, or ``weights`` where the caller already has it) and the videos."""
    key = hashlib.sha1(json.dumps({**key_parts, "weights": weights or weights_hash(encoder),
                                   "videos": [r.path for r in records]}, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"features_{key}.pt"
    if path.exists():
        log.info("feature cache hit: %s", path)
        return torch.load(path, weights_only=True)
    out = extract(encoder, records, **kw)
    atomic_write_bytes(path, lambda f: torch.save(out, f))
    return out
