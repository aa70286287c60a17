"""Frame-index arithmetic of the clip samplers; pure functions of (video length, rng).

* :func:`vdim_view_indices`: the VDIM view generator, paper sec. 3.1 steps 1-3 and sec. 4.
* :func:`kview_indices`: the K-view evaluation sampler of sec. 4.1 (offsets 0, F, 2F, ...).
* :func:`rho_clip_indices`: rho clips of T frames at stride tau, starts uniform over the
  whole video (Feichtenhofer et al. 2021, sec. 3).
* :func:`uniform_clip_indices`: evenly spaced test clips (SlowFast's "10 clips" protocol).
* :class:`AtFrameRate`: any of them on a video resampled to a fixed frame rate (SlowFast's
  ``DATA.TARGET_FPS``).

A method names its pretraining sampler by returning one of the sampler objects below
(:class:`VDIMViews`, :class:`RhoClips`) from ``Method.clip_sampler``: called with a video's
length and a generator, each gives the frame indices of every clip of one sample, and its
``clips`` says how many that is.

Indices may run past the video's end; the decoder repeats the last frame there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import math

import numpy as np

from benchmark.errors import UserError


def vdim_window_length(frames: int, offset: int, downsample: Sequence[int]) -> int:
    """Length of the moving window that holds both views.

    View 1 starts at 0 and view 2 at ``offset``; view k covers ``frames * downsample[k]``
    frames so that both have ``frames`` frames after downsampling. With offset = frames and
    factors (1, 2) the views are disjoint and split the window 1/3 : 2/3 (sec. 3.1, step 2).
    """
    if frames <= 0:
        raise UserError(f"bad clip length {frames}: a view needs at least one frame")
    if len(downsample) != 2 or min(downsample) < 1:
        raise UserError(f"bad downsampling {list(downsample)}: need two factors >= 1, e.g. [1, 2]")
    if offset < 0:
        raise UserError(f"bad view offset {offset}: must be >= 0 (the paper uses 0 or 32)")
    starts = (0, offset)
    return max(s + frames * d for s, d in zip(starts, downsample))


def vdim_view_indices(num_frames: int, frames: int, offset: int, downsample: Sequence[int],
                      rng: np.random.Generator) -> List[np.ndarray]:
    """Two index arrays of equal length ``frames``, one per view.

    Step 1: a window of fixed length is drawn with stride 1 (uniform start); when the
    video is shorter, the window starts at 0 and is padded by repeating the last frame.
    Steps 2-3: view k starts at (0, offset)[k] inside the window and takes every
    downsample[k]-th frame.
    """
    window = vdim_window_length(frames, offset, downsample)
    start = int(rng.integers(0, num_frames - window + 1)) if num_frames >= window else 0
    idx = [start + s + np.arange(frames) * d for s, d in zip((0, offset), downsample)]
    return [np.minimum(i, max(num_frames - 1, 0)) for i in idx]


def kview_indices(num_frames: int, frames: int, views: int, downsample: int = 1, start: int = 0
                  ) -> List[np.ndarray]:
    """K views at offsets 0, F, 2F, ... from ``start`` (sec. 4.1), each F frames after downsampling."""
    span = frames * downsample
    idx = [start + k * span + np.arange(frames) * downsample for k in range(views)]
    return [np.minimum(i, max(num_frames - 1, 0)) for i in idx]


def check_rho_clips(rho: int, frames: int, stride: int) -> None:
    """At least one clip per video, and clips of at least one frame at a stride of at least one."""
    if rho < 1:
        raise UserError(f"bad rho {rho}: need at least 1 clip per video")
    if frames <= 0 or stride <= 0:
        raise UserError(f"bad clip length {frames} x stride {stride}: both must be >= 1")


GAP_RETRIES = 100  # SlowFast's num_retries in get_multiple_start_end_idx, per clip and per whole draw


def rho_clip_starts(last_start: int, rho: int, rng: np.random.Generator, max_distance: Optional[int],
                    fits=lambda starts: True) -> List[int]:
    """rho starts in ``[0, last_start]``, independent and uniform (within ``max_distance`` of the
    first one's where that is given). Each start after the first is drawn again, up to
    :data:`GAP_RETRIES` times, until ``fits`` accepts the starts so far (SlowFast's
    ``sample_clips``)."""
    starts = [int(rng.integers(0, last_start + 1))]
    for _ in range(rho - 1):
        lo, hi = 0, last_start
        if max_distance is not None:
            lo, hi = max(0, starts[0] - max_distance), min(last_start, starts[0] + max_distance)
        for attempt in range(GAP_RETRIES):
            start = int(rng.integers(lo, hi + 1))
            if fits(starts + [start]) or attempt == GAP_RETRIES - 1:
                break
        starts.append(start)
    return starts


def gap_violation(starts: List[int], span: int, min_gap: Optional[int], max_gap: Optional[int]) -> int:
    """How far sorted clips' gaps (next start minus this clip's last frame, SlowFast's ``dt``) fall
    outside ``[min_gap, max_gap]``, in frames summed; 0 when they all lie inside."""
    ordered = sorted(starts)
    gaps = [b - (a + span - 1) for a, b in zip(ordered, ordered[1:])]
    low = 0 if min_gap is None else sum(min_gap - g for g in gaps if g < min_gap)
    high = 0 if max_gap is None else sum(g - max_gap for g in gaps if g > max_gap)
    return low + high


def rho_clip_indices(num_frames: int, rho: int, frames: int, stride: int, rng: np.random.Generator,
                     max_distance: Optional[int] = None, sort: Optional[bool] = None,
                     min_gap: Optional[int] = None, max_gap: Optional[int] = None) -> List[np.ndarray]:
    """rho clips of ``frames`` frames at ``stride``; starts independent and uniform.

    Clips may overlap. With ``max_distance`` every start lies within that many frames of
    the first clip's start. With ``sort`` the clips come in time order, as SlowFast's decoder
    returns them (so rho-SimCLR's "consecutive" pairs are neighbours in time). ``min_gap`` and
    ``max_gap`` bound the gap between neighbouring clips (SlowFast's ``CONTRASTIVE.DELTA_CLIPS_MIN``
    and ``_MAX``) as SlowFast's decoder does: each clip is drawn again, up to 100 times, until the
    sorted clips so far keep the bounds, and the whole draw again, up to 100 times, keeping the one
    that falls least outside them. Short videos start at 0 and repeat their last frame.
    """
    check_rho_clips(rho, frames, stride)
    span = (frames - 1) * stride + 1
    last_start = max(num_frames - span, 0)
    if min_gap is None and max_gap is None:
        starts = rho_clip_starts(last_start, rho, rng, max_distance)
    else:
        fits = lambda so_far: gap_violation(so_far, span, min_gap, max_gap) == 0  # noqa: E731
        starts, best = None, None
        for _ in range(GAP_RETRIES):
            again = rho_clip_starts(last_start, rho, rng, max_distance, fits)
            violation = gap_violation(again, span, min_gap, max_gap)
            if best is None or violation < best:
                starts, best = again, violation
            if best == 0:
                break
    if sort:
        starts = sorted(starts)
    return [np.minimum(s + np.arange(frames) * stride, max(num_frames - 1, 0)) for s in starts]


def uniform_clip_indices(num_frames: int, clips: int, frames: int, stride: int) -> List[np.ndarray]:
    """``clips`` clips with evenly spaced starts over the video (deterministic test-time sampling)."""
    span = (frames - 1) * stride + 1
    last_start = max(num_frames - span, 0)
    starts = np.linspace(0, last_start, clips).round().astype(int) if clips > 1 else [last_start // 2]
    return [np.minimum(s + np.arange(frames) * stride, max(num_frames - 1, 0)) for s in starts]


@dataclass(frozen=True)
class VDIMViews:
    """The VDIM view generator (:func:`vdim_view_indices`): two views of one window."""
    frames: int
    offset: int
    downsample: Tuple[int, ...]

    def __post_init__(self):
        vdim_window_length(self.frames, self.offset, self.downsample)  # bad settings fail on construction

    @property
    def clips(self) -> int:
        return len(self.downsample)

    def __call__(self, num_frames: int, rng: np.random.Generator) -> List[np.ndarray]:
        return vdim_view_indices(num_frames, self.frames, self.offset, list(self.downsample), rng=rng)


@dataclass(frozen=True)
class RhoClips:
    """``rho`` clips of one video (:func:`rho_clip_indices`); ``rho=1`` is one random clip."""
    rho: int
    frames: int
    stride: int
    max_distance: Optional[int] = None
    sort: Optional[bool] = None
    min_gap: Optional[int] = None
    max_gap: Optional[int] = None

    @classmethod
    def of(cls, clips) -> "RhoClips":
        """From a ``RhoClipConfig`` (``method.clips``)."""
        return cls(clips.rho, clips.frames, clips.stride, clips.max_distance, clips.get("sort"), clips.get("min_gap"),
                   clips.get("max_gap"))

    def __post_init__(self):
        check_rho_clips(self.rho, self.frames, self.stride)

    @property
    def clips(self) -> int:
        return self.rho

    def __call__(self, num_frames: int, rng: np.random.Generator) -> List[np.ndarray]:
        return rho_clip_indices(num_frames, self.rho, self.frames, self.stride, rng=rng, max_distance=self.max_distance,
                                sort=self.sort, min_gap=self.min_gap, max_gap=self.max_gap)


def resampled_length(num_frames: int, fps: float, target_fps: float) -> int:
    """Frames of a ``num_frames`` video at ``fps`` once resampled to ``target_fps`` (at least 1)."""
    return max(1, math.floor(num_frames * target_fps / fps))


def source_frames(indices: np.ndarray, num_frames: int, fps: float, target_fps: float) -> np.ndarray:
    """The source frames shown at frames ``indices`` of the video resampled to ``target_fps``:
    frame ``i`` at ``target_fps`` is at time ``i / target_fps``, the source's frame ``floor(i fps /
    target_fps)`` (clamped to the last)."""
    return np.minimum(np.floor(np.asarray(indices) * (fps / target_fps) + 1e-9).astype(int), max(num_frames - 1, 0))


@dataclass(frozen=True)
class AtFrameRate:
    """``sampler``'s clips as if every video ran at ``target_fps``: SlowFast's decoder
    (``slowfast/datasets/decoder.py``) takes ``NUM_FRAMES x SAMPLING_RATE`` frames at
    ``DATA.TARGET_FPS`` (30), so a clip spans the same time in a 25 fps and a 30 fps video. The
    sampler draws on the resampled length; its indices map back to source frames
    (:func:`source_frames`). ``load_views`` passes the video's frame rate. A clip's frames are
    ``stride`` frames of the resampled video apart; SlowFast's ``temporal_sampling`` spreads its T
    frames over the clip's T x tau with ``linspace``, (T tau - 1) / (T - 1) apart (9 at 8 x 8)."""
    sampler: object
    target_fps: float

    @property
    def clips(self) -> int:
        return self.sampler.clips

    def at(self, num_frames: int, fps: float, rng: np.random.Generator) -> List[np.ndarray]:
        virtual = resampled_length(num_frames, fps, self.target_fps)
        return [source_frames(v, num_frames, fps, self.target_fps) for v in self.sampler(virtual, rng)]


def at_frame_rate(sampler, target_fps: Optional[float], key: str = "dataset.target_fps"):
    """``sampler`` at ``target_fps`` (:class:`AtFrameRate`); itself when ``target_fps`` is None.
    ``key``: the setting named when the rate is not above 0."""
    if target_fps is None:
        return sampler
    if not target_fps > 0:
        raise UserError(f"bad {key} {target_fps}: must be > 0 frames per second, or null for each video's own rate")
    return AtFrameRate(sampler, float(target_fps))
