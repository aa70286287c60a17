"""Decode chosen frames of a video with PyAV, once per sample for all of its clips or views.

The view generators compute frame indices first; this module decodes the span those
indices cover in one pass (seeking to the first needed frame on long videos) and
returns exactly the requested frames as ``uint8 [N, H, W, 3]``. Decoding and colour
conversion run on one thread, as SlowFast decodes by default (``multi_thread_decode=False``):
DataLoader workers are the parallelism, and per-video thread pools cost more than they save
on short clips. A video that cannot be opened or yields no frames raises
:class:`VideoDecodeError`, which the datasets count and skip.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Sequence, Tuple

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter


class VideoDecodeError(RuntimeError):
    pass


def probe(path: str) -> Tuple[int, float]:
    """Return ``(num_frames, fps)``; falls back to decoding when the container has no count.

    Remembered per file version (path, modification time, size), as a run samples each video
    many times and every sample would otherwise open its container twice."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise VideoDecodeError(f"{path}: {e}") from e
    return _probe(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=1 << 16)
def _probe(path: str, mtime_ns: int, size: int) -> Tuple[int, float]:
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            n = stream.frames
            if not n:
                n = sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, IndexError, OSError, ValueError) as e:
        raise VideoDecodeError(f"{path}: {e}") from e
    if n <= 0:
        raise VideoDecodeError(f"{path}: no video frames")
    return int(n), fps


def rgb_converter():
    """``frame -> uint8 [H, W, 3]`` through one swscale context for a whole video, single-threaded:
    ``frame.to_ndarray(format=...)`` builds a new context per frame and PyAV's default starts a
    thread pool per conversion, which together cost 10-20x the decoding itself on small frames
    (perf suite, data section)."""
    reformatter = VideoReformatter()
    return lambda frame: reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def decode_frames(path: str, indices: Sequence[int], seek_after: int = 64) -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) as ``uint8 [len(indices), H, W, 3]``.

    Indices past the last decodable frame repeat the last frame (VDIM sec. 3.1 pads short
    clips by repeating the last frame).
    """
    wanted = np.asarray(indices, dtype=np.int64)
    first, last = int(wanted.min()), int(wanted.max())
    frames = {}
    to_rgb = rgb_converter()
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            tb = float(stream.time_base)
            if first > seek_after and stream.time_base is not None:
                container.seek(int((first / fps) / tb), stream=stream, backward=True, any_frame=False)
            start_pts = stream.start_time or 0
            for i, frame in enumerate(container.decode(stream)):
                idx = round((frame.pts - start_pts) * tb * fps) if frame.pts is not None else i
                if idx > last:
                    break
                if idx >= first:
                    frames[idx] = to_rgb(frame)
    except (av.FFmpegError, IndexError, OSError, ValueError) as e:
        raise VideoDecodeError(f"{path}: {e}") from e
    if not frames:
        raise VideoDecodeError(f"{path}: no decodable frames in [{first}, {last}]")
    have = np.array(sorted(frames))
    # nearest decoded frame at or before each index; the last one pads short videos
    pos = np.clip(np.searchsorted(have, wanted, side="right") - 1, 0, len(have) - 1)
    return torch.from_numpy(np.stack([frames[int(have[p])] for p in pos]))
