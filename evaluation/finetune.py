"""End-to-end fine-tuning with two presets, through the trainer's one loop
(:func:`benchmark.trainer.train_steps`: precision, loss scaling, clipping, checkpoints, resume).

* ``vdim`` (VDIM sec. 4.1): K views at offsets 0, F, 2F, ... through the encoder, their
  global features concatenated, a classifier with one hidden layer of 1024 and dropout 0.2,
  Adam lr 1e-3 decayed by 0.5 every N steps, Lab dropout, no downsampling.
* ``rho`` (Feichtenhofer et al. 2021, sec. 5): one clip, dropout 0.8 and a linear layer,
  SGD with step decay.

The clips' augmentation is ``eval.finetune.augment``, whatever the encoder was pretrained with.
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

from benchmark.checkpoint import save_checkpoint
from benchmark.data import samplers
from benchmark.data.augment import build_clip_augment, build_eval_transform
from benchmark.data.datasets import PretrainStream, VideoClipsDataset, collate_skip_none
from benchmark.data.pipeline import augmented_view
from benchmark.errors import unknown_choice
from benchmark.optim import build_optimizer, build_scheduler
from benchmark.trainer import LoopSettings, new_scaler, resume_training, train_steps, training_state
from evaluation.aggregate import average_per_video, top1
from evaluation.protocols import register_protocol

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


class ClassificationLoss(nn.Module):
    """The training loop's view of a :class:`ClipClassifier`: a batch's K views in, cross-entropy out."""

    def __init__(self, classifier: ClipClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, views, labels):
        return {"loss": F.cross_entropy(self.classifier(torch.stack(views, dim=1)).float(), labels)}


def check_finetune(ft) -> None:
    if ft.preset not in PRESETS:
        raise unknown_choice("eval.finetune.preset", ft.preset, PRESETS)


def views_of(ft) -> int:
    return ft.views if ft.preset == "vdim" else 1


def finetune_split(encoder, ft, train_records, test_records, num_classes: int, frames: int, size: int,
                   clips_per_video: int, runtime, out_dir: Path, seed: int) -> float:
    """Fine-tune a copy of ``encoder`` on ``train_records``; top-1 (%) on ``test_records``."""
    check_finetune(ft)
    device = runtime.device
    views = views_of(ft)
    hidden = ft.hidden_dim if ft.preset == "vdim" else 0
    torch.manual_seed(seed)  # the same head and dropout masks for the same seed, on every split
    model = ClipClassifier(copy.deepcopy(encoder), views, num_classes, hidden, ft.dropout).to(device)
    trained = ClassificationLoss(model)
    opt = build_optimizer(ft.optimizer, model.parameters(), ft.lr, ft.weight_decay, ft.momentum)
    sched = build_scheduler(opt, ft.steps, "step", 0, ft.decay_every, ft.decay_factor)
    scaler = new_scaler(device, runtime.precision)
    ckpt = out_dir / "last.pt"
    start = 0
    if runtime.resume and ckpt.exists():  # dropout masks continue as if never stopped (the RNG is restored)
        start = int(resume_training(ckpt, model, opt, sched, scaler, "the fine-tuning classifier")["step"])
    view_fn = partial(augmented_view, build_clip_augment(ft.augment, size), ft.augment.color)

    def train_index(n, rng):  # K consecutive views from a random start (sec. 4.1)
        span = frames * views
        start_f = int(rng.integers(0, max(n - span, 0) + 1))
        return samplers.kview_indices(n, frames, views, 1, start_f)

    stream = PretrainStream(train_records, train_index, view_fn, ft.batch_size, ft.steps, seed + 17, start,
                            skipped_log=runtime.skipped_log)
    settings = LoopSettings(steps=ft.steps, precision=runtime.precision, grad_clip=ft.grad_clip,
                            checkpoint_every=ft.checkpoint_every, num_workers=runtime.num_workers,
                            progress=runtime.progress, desc="finetune", seed=seed,
                            diverged_hint="try a lower eval.finetune.lr")
    train_steps(trained, stream, opt, sched, scaler, device, settings, start, checkpoint_path=str(ckpt),
                save=lambda step, loss: save_checkpoint(ckpt, training_state(model, opt, sched, scaler, step)))
    # test: clips_per_video windows of K views each
    tf = build_eval_transform(size, ft.augment.color)

    def test_index(n, rng):
        span = frames * views
        starts = np.linspace(0, max(n - span, 0), clips_per_video).round().astype(int)
        return [v for s in starts for v in samplers.kview_indices(n, frames, views, 1, int(s))]

    ds = VideoClipsDataset(test_records, test_index, partial(augmented_view, tf, ft.augment.color), runtime.skipped_log)
    model.eval()
    probs, vids, labels = [], [], torch.tensor([r.label for r in test_records])
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=2, num_workers=runtime.num_workers, collate_fn=collate_skip_none):
            if batch is None:
                continue
            b = batch["clips"].shape[0]
            clips = batch["clips"].view(b * clips_per_video, views, *batch["clips"].shape[2:]).to(device)
            with runtime.precision_ctx:
                probs.append(F.softmax(model(clips).float(), 1).cpu())
            vids.append(batch["index"].repeat_interleave(clips_per_video))
    return top1(average_per_video(torch.cat(probs), torch.cat(vids), len(test_records)), labels)


def describe_finetune(ft, data):
    return {"finetune_preset": ft.preset, "test_protocol": f"{data.clips_per_video} clips x {views_of(ft)} views"}


@register_protocol("finetune", describe=describe_finetune, check=check_finetune)
def finetune_protocol(encoder, ft, data):
    """``eval.finetune``: per split, a copy of the encoder fine-tuned end to end on the train list."""
    rt = data.runtime
    out_root = (rt.run_dir or Path(".")) / "finetune"
    return {split: {"top1": finetune_split(encoder, ft, train, test, data.num_classes, data.frames, data.size,
                                           data.clips_per_video, rt, out_root / f"split{split}", data.seed)}
            for split, (train, test) in data.splits.items()}
