"""End-to-end fine-tuning with two presets, through the trainer's one loop
(:func:`benchmark.trainer.train_steps`: precision, loss scaling, clipping, checkpoints, resume).

* ``vdim`` (VDIM sec. 4.1): K views at offsets 0, F, 2F, ... through the encoder, their
  global features concatenated, a classifier with one hidden layer of 1024 and dropout 0.2,
  Adam lr 1e-3 decayed by 0.5 every N steps, Lab dropout, no downsampling.
* ``rho`` (Feichtenhofer et al. 2021, sec. 5): one clip, dropout 0.8 and a linear layer, SGD;
  the rho presets schedule it as SlowFast's UCF-101 fine-tuning (cosine over 200 epochs at a
  rate per 64 clips: ``epochs``, ``lr_reference_batch``, ``schedule``).
* ``dpc`` (Han et al. 2019; official ``eval/model_3d_lc.py`` and ``eval/test.py``): ``blocks``
  blocks of ``frames`` frames at the data's frame stride, each through the encoder (its last
  local map, ReLU, averaged over time), a ConvGRU over the blocks (kernel 1, dropout 0.1), its
  last hidden state averaged over space, BatchNorm1d, dropout 0.5, linear; Adam 1e-3, weight
  decay 1e-3, the encoder and GRU at ``backbone_lr_scale`` of the rate (``--train_what ft``:
  0.1), decayed by 0.1 at ``decay_at``. Test: the video cut into non-overlapping blocks, windows
  of ``blocks`` blocks every ``window_stride`` blocks, softmax averaged per video.

The clips' augmentation is ``eval.finetune.augment``, whatever the encoder was pretrained with.
Test: ``clips_per_video`` windows per video, probabilities averaged per video. Each split
checkpoints to ``<run>/finetune/split<k>/last.pt`` and resumes from it.
"""
from __future__ import annotations

import copy
from typing import Optional
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from benchmark.checkpoint import save_checkpoint
from benchmark.data import samplers
from benchmark.data.augment import build_eval_transform, check_augment_choices
from benchmark.data.datasets import PretrainStream, VideoClipsDataset, collate_skip_none
from benchmark.data.pipeline import augmented_view, clip_view_fn
from benchmark.errors import UserError, unknown_choice
from benchmark.optim import SCHEDULES, build_optimizer, build_scheduler, schedule_in_steps
from benchmark.trainer import LoopSettings, new_scaler, resume_training, train_steps, training_state
from evaluation.aggregate import average_per_video, scored
from evaluation.batch_norm import track_running_statistics
from evaluation.protocols import register_protocol

PRESETS = ("vdim", "rho", "dpc")


HEADS = ("mlp", "amdim")


def classifier_head(d: int, num_classes: int, hidden: int, dropout: float, kind: str = "mlp") -> nn.Sequential:
    """The fine-tuning classifier on ``d`` features. ``hidden`` 0: dropout and linear (the rho
    study's). Otherwise one hidden layer (VDIM sec. 4.1: "a single hidden layer of size 1024 with
    dropout"): ``mlp`` linear, ReLU, dropout, linear; ``amdim`` AMDIM's ``MLPClassifier``
    (``model.py``, ``n_hidden=1024, p=0.2``): dropout, bias-free linear, BatchNorm1d, ReLU,
    dropout, linear."""
    if not hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))
    if kind == "amdim":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden),
                             nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class ClipClassifier(nn.Module):
    """Encoder + classifier over K concatenated views (``[B, K, 3, T, H, W]``)."""

    def __init__(self, encoder: nn.Module, views: int, num_classes: int, hidden: int, dropout: float,
                 head: str = "mlp"):
        super().__init__()
        self.encoder, self.views = encoder, views
        self.head = classifier_head(encoder.global_dim * views, num_classes, hidden, dropout, head)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, k = clips.shape[:2]
        g = self.encoder(clips.flatten(0, 1))["global"].view(b, k * self.encoder.global_dim)
        return self.head(g.float())


class BlockSequenceClassifier(nn.Module):
    """DPC's ``LC`` (``eval/model_3d_lc.py``): ``[B, 1, 3, N SL, H, W]`` clips of N blocks back to back;
    the encoder's last local map per block (ReLU, time average), a ConvGRU over the N blocks,
    the last hidden state averaged over space, BatchNorm1d, dropout and linear."""

    def __init__(self, encoder: nn.Module, blocks: int, num_classes: int, dropout: float):
        super().__init__()
        from methods.base import feature_shapes
        from methods.dpc import ConvGRU, orthogonal_init
        maps = [k for k, v in feature_shapes(encoder).items() if len(v) == 5]
        if not maps:
            raise UserError("eval.finetune.preset=dpc needs an encoder with a local [B, D, T, H, W] map")
        self.encoder, self.blocks, self.feature_map = encoder, blocks, maps[-1]
        d = feature_shapes(encoder)[self.feature_map][1]
        self.aggregator = ConvGRU(d, d, 1, 0.1)
        self.bn = nn.BatchNorm1d(d)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))
        orthogonal_init(self.head)

    def backbone_parameters(self) -> list:
        return [*self.encoder.parameters(), *self.aggregator.parameters()]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        from methods.dpc import as_blocks, block_maps
        f = F.relu(block_maps(self.encoder, as_blocks(clips.flatten(0, 1), self.blocks), self.feature_map))
        hidden = None
        for i in range(f.shape[1]):
            hidden = self.aggregator(f[:, i], hidden)
        return self.head(self.bn(hidden.mean((2, 3)).float()))


class ClassificationLoss(nn.Module):
    """The training loop's view of a :class:`ClipClassifier`: a batch's K views in, cross-entropy out."""

    def __init__(self, classifier: ClipClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, views, labels):
        return {"loss": F.cross_entropy(self.classifier(torch.stack(views, dim=1)).float(), labels)}


LAB_DROPOUT_TEST = ("average", "keep_all")


def lab_test_inputs(clips: torch.Tensor, ft) -> list:
    """The test inputs whose class probabilities are averaged for ``clips`` ``[n, views, 3, T, H, W]``:
    under Lab dropout with ``lab_dropout_test=average``, the clips with each Lab channel zeroed in
    turn (the inputs fine-tuning trained on, without their randomness); otherwise the clips."""
    if ft.augment.color != "lab_dropout" or ft.lab_dropout_test == "keep_all":
        return [clips]
    variants = []
    for channel in range(clips.shape[2]):
        dropped = clips.clone()
        dropped[:, :, channel] = 0
        variants.append(dropped)
    return variants


def check_finetune(ft) -> None:
    if ft.preset not in PRESETS:
        raise unknown_choice("eval.finetune.preset", ft.preset, PRESETS)
    if ft.head not in HEADS:
        raise unknown_choice("eval.finetune.head", ft.head, HEADS)
    if ft.schedule not in SCHEDULES:
        raise unknown_choice("eval.finetune.schedule", ft.schedule, SCHEDULES)
    if ft.lab_dropout_test not in LAB_DROPOUT_TEST:
        raise unknown_choice("eval.finetune.lab_dropout_test", ft.lab_dropout_test, LAB_DROPOUT_TEST)
    check_augment_choices(ft.augment, "eval.finetune.augment")


def views_of(ft) -> int:
    return ft.views if ft.preset == "vdim" else 1


def build_classifier(encoder, ft, num_classes: int) -> nn.Module:
    if ft.preset == "dpc":
        return BlockSequenceClassifier(encoder, ft.blocks, num_classes, ft.dropout)
    return ClipClassifier(encoder, views_of(ft), num_classes, ft.hidden_dim if ft.preset == "vdim" else 0, ft.dropout,
                          ft.head)


def parameter_groups(model: nn.Module, ft) -> list:
    """The encoder (and DPC's GRU) at ``backbone_lr_scale`` of the rate, the head at the rate."""
    backbone = model.backbone_parameters() if hasattr(model, "backbone_parameters") else list(model.encoder.parameters())
    ids = {id(p) for p in backbone}
    return [{"params": backbone, "lr_scale": ft.backbone_lr_scale},
            {"params": [p for p in model.parameters() if id(p) not in ids]}]


def train_index_fn(ft, frames: int, frame_stride: int):
    """One training sample's frames: K consecutive views (vdim, rho), or one clip of ``blocks``
    blocks at the frame stride (dpc), from a random start."""
    if ft.preset == "dpc":
        span = ft.blocks * frames

        def dpc_index(n, rng):
            start_f = int(rng.integers(0, max(n - (span - 1) * frame_stride - 1, 0) + 1))
            return samplers.kview_indices(n, span, 1, frame_stride, start_f)
        return dpc_index
    views = views_of(ft)

    def kview_index(n, rng):  # K consecutive views from a random start (sec. 4.1)
        start_f = int(rng.integers(0, max(n - frames * views, 0) + 1))
        return samplers.kview_indices(n, frames, views, 1, start_f)
    return kview_index


def dpc_test_windows(n: int, frames: int, blocks: int, window_stride: int, frame_stride: int) -> list:
    """DPC's test clips (``eval/dataset_3d_lc.py``): the video's frames at ``frame_stride`` cut into
    non-overlapping blocks of ``frames``; windows of ``blocks`` blocks every ``window_stride`` blocks
    (at least one window: a short video's last frame repeats)."""
    total = len(range(0, n, frame_stride)) // frames
    starts = range(0, max(total - blocks, 0) + 1, window_stride)
    return [samplers.kview_indices(n, blocks * frames, 1, frame_stride, s * frames * frame_stride)[0] for s in starts]


def test_index_fn(ft, frames: int, clips_per_video: int, frame_stride: int, crops: int = 1):
    """A test video's clips, each a ``[views]`` group of the classifier's input, every group
    ``crops`` times in a row (one spatial crop each, :func:`test_view_fn`)."""
    if ft.preset == "dpc":
        groups = lambda n: [[w] for w in dpc_test_windows(n, frames, ft.blocks, ft.window_stride, frame_stride)]  # noqa: E731
    else:
        views = views_of(ft)

        def groups(n):  # clips_per_video windows of K views each
            starts = np.linspace(0, max(n - frames * views, 0), clips_per_video).round().astype(int)
            return [samplers.kview_indices(n, frames, views, 1, int(s)) for s in starts]
    return lambda n, rng: [v for g in groups(n) for _ in range(crops) for v in g]


def test_view_fn(size: int, color: str, views: int, crops: int = 1):
    """The test clips' view function: clip ``k`` of :func:`test_index_fn`'s list gets spatial crop
    ``(k // views) % crops`` (left, centre, right for 3, as ``eval.spatial_crops``)."""
    transforms = [build_eval_transform(size, color, c, crops) for c in range(crops)]
    return lambda frames, k=0: augmented_view(transforms[(k // views) % crops], color, frames)


def finetune_split(encoder, ft, train_records, test_records, num_classes: int, frames: int, size: int,
                   clips_per_video: int, runtime, out_dir: Path, seed: int, frame_stride: int = 1,
                   spatial_crops: int = 1, test_size: Optional[int] = None, target_fps: Optional[float] = None) -> dict:
    """Fine-tune a copy of ``encoder`` on ``train_records``; top-1 (%) on ``test_records`` (every
    test window at ``spatial_crops`` crops) and the per-video predictions
    (:func:`evaluation.aggregate.scored`). Clips of both at ``target_fps`` (None: each video's own)."""
    check_finetune(ft)
    device = runtime.device
    views = views_of(ft)
    torch.manual_seed(seed)  # the same head and dropout masks for the same seed, on every split
    model = build_classifier(track_running_statistics(copy.deepcopy(encoder)), ft, num_classes).to(device)
    trained = ClassificationLoss(model)
    plan = schedule_in_steps(ft, len(train_records), 1)
    opt = build_optimizer(ft.optimizer, parameter_groups(model, ft), plan.lr, ft.weight_decay, ft.momentum, ft.nesterov)
    sched = build_scheduler(opt, plan.steps, ft.schedule, 0, ft.decay_every, ft.decay_factor, ft.decay_at)
    scaler = new_scaler(device, runtime.precision)
    ckpt = out_dir / "last.pt"
    start = 0
    if runtime.resume and ckpt.exists():  # dropout masks continue as if never stopped (the RNG is restored)
        start = int(resume_training(ckpt, model, opt, sched, scaler, "the fine-tuning classifier")["step"])
    view_fn = clip_view_fn(ft.augment, size)
    train_index = samplers.at_frame_rate(train_index_fn(ft, frames, frame_stride), target_fps, "eval.target_fps")
    stream = PretrainStream(train_records, train_index, view_fn, ft.batch_size, plan.steps, seed + 17, start,
                            skipped_log=runtime.skipped_log)
    settings = LoopSettings(steps=plan.steps, precision=runtime.precision, grad_clip=ft.grad_clip,
                            checkpoint_every=ft.checkpoint_every, num_workers=runtime.num_workers,
                            progress=runtime.progress, desc="finetune", seed=seed,
                            bf16_conv_check=runtime.bf16_conv_check,
                            diverged_hint="try a lower eval.finetune.lr")
    train_steps(trained, stream, opt, sched, scaler, device, settings, start, checkpoint_path=str(ckpt),
                save=lambda step, loss: save_checkpoint(ckpt, training_state(model, opt, sched, scaler, step)))
    test_index = samplers.at_frame_rate(test_index_fn(ft, frames, clips_per_video, frame_stride, spatial_crops), target_fps,
                                       "eval.target_fps")
    ds = VideoClipsDataset(test_records, test_index,
                           test_view_fn(test_size or size, ft.augment.color, views, spatial_crops), runtime.skipped_log)
    model.eval()
    probs, vids, labels = [], [], torch.tensor([r.label for r in test_records])
    with torch.no_grad():  # one video a batch: DPC's windows per video vary with its length
        for batch in DataLoader(ds, batch_size=1, num_workers=runtime.num_workers, collate_fn=collate_skip_none):
            if batch is None:
                continue
            clips = batch["clips"][0]
            clips = clips.view(clips.shape[0] // views, views, *clips.shape[1:]).to(device)
            with runtime.precision_ctx:
                variants = lab_test_inputs(clips, ft)
                probs.append(sum(F.softmax(model(x).float(), 1) for x in variants).cpu() / len(variants))
            vids.append(batch["index"].repeat(len(clips)))
    return scored(average_per_video(torch.cat(probs), torch.cat(vids), len(test_records)), labels,
                  [r.path for r in test_records])


def describe_finetune(ft, data):
    if ft.preset == "dpc":
        test = f"windows of {ft.blocks} blocks every {ft.window_stride}"
    else:
        test = f"{data.clips_per_video} clips x {views_of(ft)} views"
    if data.spatial_crops > 1:
        test += f" x {data.spatial_crops} crops"
    if ft.augment.color == "lab_dropout" and ft.lab_dropout_test == "average":
        test += ", each Lab channel dropped in turn"
    return {"finetune_preset": ft.preset, "test_protocol": test}


@register_protocol("finetune", describe=describe_finetune, check=check_finetune)
def finetune_protocol(encoder, ft, data):
    """``eval.finetune``: per split, a copy of the encoder fine-tuned end to end on the train list."""
    rt = data.runtime
    out_root = (rt.run_dir or Path(".")) / "finetune"
    return {split: finetune_split(encoder, ft, train, test, data.num_classes, data.frames, data.size,
                                  data.clips_per_video, rt, out_root / f"split{split}", data.seed, data.frame_stride,
                                  data.spatial_crops, data.test_size, data.target_fps)
            for split, (train, test) in data.splits.items()}
