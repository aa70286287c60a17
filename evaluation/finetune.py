"""End-to-end fine-tuning with two presets.

* ``vdim`` (VDIM sec. 4.1): K views at offsets 0, F, 2F, ... through the encoder, their
  global features concatenated, a classifier with one hidden layer of 1024 and dropout 0.2,
  Adam lr 1e-3 decayed by 0.5 every N steps, Lab dropout, no downsampling.
* ``rho`` (Feichtenhofer et al. 2021, sec. 5): one clip, dropout 0.8 and a linear layer,
  SGD with step decay.

Test: ``clips_per_video`` windows per video, probabilities averaged per video. Each split
checkpoints to ``<run>/finetune/split<k>/last.pt`` and resumes from it.
"""
from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from benchmark.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from benchmark.data import samplers
from benchmark.data.augment import build_clip_augment, build_eval_transform
from benchmark.data.datasets import PretrainStream, VideoClipsDataset, collate_skip_none
from benchmark.data.pipeline import augmented_view
from benchmark.errors import unknown_choice
from benchmark.optim import build_optimizer, build_scheduler
from evaluation.aggregate import average_per_video, top1

PRESETS = ("vdim", "rho")


class ClipClassifier(nn.Module):
    """Encoder + classifier over K concatenated views (``[B, K, 3, T, H, W]``)."""

    def __init__(self, encoder: nn.Module, views: int, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.encoder, self.views = encoder, views
        d = encoder.global_dim * views
        self.head = (nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
                     if hidden else nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes)))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, k = clips.shape[:2]
        g = self.encoder(clips.flatten(0, 1))["global"].view(b, k * self.encoder.global_dim)
        return self.head(g.float())


def finetune_split(encoder, ft, aug_cfg, train_records, test_records, num_classes: int, frames: int, size: int,
                   clips_per_video: int, device, precision_ctx, out_dir: Path, seed: int, resume: bool,
                   num_workers: int = 0, progress: bool = True, skipped_log=None) -> float:
    if ft.preset not in PRESETS:
        raise unknown_choice("eval.finetune.preset", ft.preset, PRESETS)
    views = ft.views if ft.preset == "vdim" else 1
    hidden = ft.hidden_dim if ft.preset == "vdim" else 0
    torch.manual_seed(seed)  # the same head and dropout masks for the same seed, on every split
    model = ClipClassifier(copy.deepcopy(encoder), views, num_classes, hidden, ft.dropout).to(device)
    opt = build_optimizer(ft.optimizer, model.parameters(), ft.lr, ft.weight_decay, ft.momentum)
    sched = build_scheduler(opt, ft.steps, "step", 0, ft.decay_every, ft.decay_factor)
    ckpt = out_dir / "last.pt"
    start = 0
    if resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"]); start = int(state["step"])
        set_rng_state(state["rng"])  # dropout masks continue as if never stopped
    aug = copy.deepcopy(aug_cfg)
    aug.color = ft.color
    view_fn = partial(augmented_view, build_clip_augment(aug, size), ft.color)

    def train_index(n, rng):  # K consecutive views from a random start (sec. 4.1)
        span = frames * views
        start_f = int(rng.integers(0, max(n - span, 0) + 1))
        return samplers.kview_indices(n, frames, views, 1, start_f)

    stream = PretrainStream(train_records, train_index, view_fn, ft.batch_size, ft.steps, seed + 17, start,
                            skipped_log=skipped_log)
    model.train()
    for batch in tqdm(DataLoader(stream, batch_size=None, num_workers=num_workers), total=ft.steps - start,
                      desc="finetune", disable=not progress, leave=False):
        clips = torch.stack(batch["views"], dim=1).to(device)
        with precision_ctx:
            loss = F.cross_entropy(model(clips).float(), batch["label"].to(device))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        step = batch["step"] + 1
        if step % ft.checkpoint_every == 0 or step == ft.steps:
            save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), "rng": rng_state(), "step": step})
    # test: clips_per_video windows of K views each
    tf = build_eval_transform(size, ft.color)

    def test_index(n, rng):
        span = frames * views
        starts = np.linspace(0, max(n - span, 0), clips_per_video).round().astype(int)
        return [v for s in starts for v in samplers.kview_indices(n, frames, views, 1, int(s))]

    ds = VideoClipsDataset(test_records, test_index, partial(augmented_view, tf, ft.color), skipped_log)
    model.eval()
    probs, vids, labels = [], [], torch.tensor([r.label for r in test_records])
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=2, num_workers=num_workers, collate_fn=collate_skip_none):
            if batch is None:
                continue
            b = batch["clips"].shape[0]
            clips = batch["clips"].view(b * clips_per_video, views, *batch["clips"].shape[2:]).to(device)
            with precision_ctx:
                probs.append(F.softmax(model(clips).float(), 1).cpu())
            vids.append(batch["index"].repeat_interleave(clips_per_video))
    return top1(average_per_video(torch.cat(probs), torch.cat(vids), len(test_records)), labels)
