"""From config to data: records of a split, and the views of a pretraining sample (the method's
own clip sampler, :meth:`methods.base.Method.clip_sampler`, with its augmentation)."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torchvision.transforms import v2

from benchmark.data import samplers
from benchmark.data.augment import (build_clip_augment, build_eval_transform, check_augment_choices, spatial_ops,
                                    to_model_input)
from benchmark.data.batch_augment import BatchClipAugment, check_augment_on
from benchmark.data.splits import VideoRecord, load_split
from benchmark.errors import UserError


def dataset_root(ds) -> Path:
    if ds.name == "synthetic":
        from benchmark.data.synthetic import ensure_synthetic
        return ensure_synthetic(ds)
    if ds.root in (None, "???"):
        raise UserError(f"dataset '{ds.name}' needs dataset.root=/path/to/{ds.name}")
    return Path(ds.root).expanduser()


def records_for(ds, split: int, subset: str) -> Tuple[List[VideoRecord], List[str]]:
    """Videos and class names of ``subset`` (train | test | all) of ``split``."""
    root = dataset_root(ds)
    fmt = ds.format
    videos, splits = ds.videos, ds.splits
    if ds.name == "synthetic" and fmt == "hmdb51":
        root, videos, splits = root / "hmdb51", ".", "testTrainMulti_7030_splits"
    records, classes = load_split(fmt, root, videos, splits, split, subset)
    if not records:
        raise UserError(f"no videos listed for split {split} ({subset}) under {root}")
    return records, classes


def augmented_view(augment, color: str, frames: torch.Tensor, k: int = 0) -> torch.Tensor:
    """Decoded ``uint8 [T, H, W, 3]`` frames through a clip transform to normalised ``[3, T, H, W]``."""
    return to_model_input(augment(frames.permute(0, 3, 1, 2)), color)


def check_clip_fits(frames: int, stride: int, what: str) -> None:
    if frames < 1 or stride < 1:
        raise UserError(f"bad clip length for {what}: {frames} frames at stride {stride}; both must be >= 1")


def spatial_view(spatial, frames: torch.Tensor, k: int = 0) -> torch.Tensor:
    """Decoded ``uint8 [T, H, W, 3]`` frames through the spatial transforms only, to ``uint8 [3, T, H, W]``
    (``trainer.augment_on=device``: the trainer does the rest, :mod:`benchmark.data.batch_augment`)."""
    return spatial(frames.permute(0, 3, 1, 2)).permute(1, 0, 2, 3).contiguous()


class SampleFlip:
    """A view function whose views of one sample share one horizontal flip (``augment.flip_per=sample``):
    AMDIM flips the image once (``flip_lr``, ``datasets.py``) before drawing both views from it.
    :func:`benchmark.data.datasets.load_views` makes a sample's views in order, after seeding torch's
    generator for that sample, so view 0 draws the flip and the others reuse it. A flip of the decoded
    frames before the crop is a flip after it, at the mirrored crop position: the same distribution."""

    def __init__(self, view_fn, p: float):
        self.view_fn, self.p, self.flip = view_fn, p, False

    def __call__(self, frames: torch.Tensor, k: int = 0) -> torch.Tensor:
        if k == 0:
            self.flip = bool(torch.rand(()) < self.p)
        return self.view_fn(frames.flip(2) if self.flip else frames, k)  # [T, H, W, 3]: width is dim 2


def with_sample_flip(view_fn, augment):
    """``view_fn`` with :class:`SampleFlip` under ``augment.flip_per=sample``; else itself."""
    return SampleFlip(view_fn, augment.flip_p) if augment.flip_per == "sample" and augment.flip_p > 0 else view_fn


def clip_view_fn(augment, size: int):
    """A training clip's view function under ``augment`` at ``size``, all of it in the workers
    (decoded frames in, normalised model input out)."""
    return with_sample_flip(partial(augmented_view, build_clip_augment(augment, size), augment.color), augment)


def train_view_fn(augment, encoder, augment_on: str = "workers"):
    """The view function of a pretraining clip under ``augment`` (decoded frames in, model input
    out); with ``augment_on="device"`` the views leave the workers cropped but not yet coloured,
    blurred or normalised (:func:`batch_augment`)."""
    check_augment_on(augment_on, augment)
    check_augment_choices(augment, "method.augment")
    if augment_on == "device":
        return with_sample_flip(partial(spatial_view, v2.Compose(spatial_ops(augment, encoder.size))), augment)
    return clip_view_fn(augment, encoder.size)


def batch_augment(augment, encoder, augment_on: str):
    """The trainer's half of ``trainer.augment_on=device`` (None when the workers augment)."""
    check_augment_on(augment_on, augment)
    if augment_on != "device":
        return None
    return BatchClipAugment(augment, encoder.size)


def eval_sampler(encoder, clips_per_video: int, spatial_crops: int, frame_stride: int, color: str = "none",
                 size: Optional[int] = None, target_fps: Optional[float] = None):
    """Deterministic test clips: ``clips_per_video`` temporal x ``spatial_crops`` spatial, of
    ``size`` (the short side and the crop; None: the encoder's), at ``target_fps`` (None: each
    video's own rate)."""
    check_clip_fits(encoder.frames, frame_stride, "evaluation")
    if spatial_crops not in (1, 3):
        raise UserError(f"bad eval.spatial_crops {spatial_crops}; valid choices: 1, 3")
    size = size or encoder.size
    transforms = [build_eval_transform(size, color, c, spatial_crops) for c in range(spatial_crops)]

    def index_fn(n: int, rng: np.random.Generator):
        clips = samplers.uniform_clip_indices(n, clips_per_video, encoder.frames, frame_stride)
        return [c for c in clips for _ in range(spatial_crops)]

    def view_fn(frames: torch.Tensor, k: int) -> torch.Tensor:
        return to_model_input(transforms[k % spatial_crops](frames.permute(0, 3, 1, 2)), color)

    return samplers.at_frame_rate(index_fn, target_fps, "eval.target_fps"), view_fn
