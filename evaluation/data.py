"""What every evaluation protocol reads: the evaluated dataset's splits, the test-clip settings,
and where and how to run. Built once, before pretraining, by whoever runs the evaluation
(``benchmark.run``); evaluation never reads the run's config itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmark.data.splits import VideoRecord


@dataclass
class EvalRuntime:
    """Where and how the protocols run; none of it changes a result."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of feature extraction and fine-tuning
    bf16_conv_check: bool = True  # fine-tuning: benchmark.bf16_conv_guard, as pretraining
    num_workers: int = 0
    progress: bool = False
    skipped_log: Optional[str] = None
    run_dir: Optional[Path] = None  # per-split fine-tuning checkpoints go under it
    resume: bool = False  # continue fine-tuning from those checkpoints
    cache_dir: Optional[Path] = None  # frozen features, keyed by the encoder's weights

    @property
    def precision_ctx(self):
        from benchmark.trainer import autocast_for
        return autocast_for(self.device, self.precision)


@dataclass
class EvalData:
    """The evaluated dataset: every split's train and test videos, and the test-clip protocol.

    ``encoder_name``, ``frames`` and ``size`` are the encoder's input (clips are cut to it);
    ``clips_per_video`` x ``spatial_crops`` test clips per video at ``frame_stride``.
    """
    dataset: str
    splits: Dict[int, Tuple[List[VideoRecord], List[VideoRecord]]]
    classes: List[str]
    encoder_name: str
    frames: int
    size: int
    test_size: Optional[int] = None  # the test clips' size (None: size)
    clips_per_video: int = 1
    spatial_crops: int = 1
    frame_stride: int = 1
    target_fps: Optional[float] = None  # the clips' frame rate (benchmark.data.samplers.AtFrameRate); None: each video's own
    feature_batch_size: int = 32
    bn_batches: int = 50  # batches of training clips that estimate an encoder's missing BN statistics (evaluation/batch_norm.py)
    seed: int = 0
    train_subset: Optional[str] = None  # the sample-sensitivity subset the train lists were cut to (evaluation/subsets.py)
    test_clips: Optional[Tuple] = None  # (index_fn, view_fn) of the test clips, built when the data is planned
    runtime: EvalRuntime = field(default_factory=EvalRuntime)
    _features: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def test_protocol(self) -> str:
        return f"{self.clips_per_video} clips x {self.spatial_crops} crops"

    def videos(self) -> List[VideoRecord]:
        """Every video of every split once, in a fixed order."""
        by_path: Dict[str, VideoRecord] = {}
        for train, test in self.splits.values():
            for r in train + test:
                by_path.setdefault(r.path, r)
        return list(by_path.values())

    def test_clip_fns(self) -> Tuple:
        """``(index_fn, view_fn)`` of the test clips, built once."""
        from benchmark.data.pipeline import eval_sampler
        if self.test_clips is None:
            self.test_clips = eval_sampler(self, self.clips_per_video, self.spatial_crops, self.frame_stride,
                                           size=self.test_size, target_fps=self.target_fps)
        return self.test_clips

    def with_population_statistics(self, encoder):
        """``encoder`` with BN population statistics estimated over the test-style clips of the first
        split's training videos, in a fixed shuffled order (no labels are read)."""
        from torch.utils.data import DataLoader

        from benchmark.data.datasets import VideoClipsDataset, collate_skip_none
        from evaluation.batch_norm import with_population_statistics
        train = next(iter(self.splits.values()))[0]
        rt = self.runtime
        per_video = self.clips_per_video * self.spatial_crops
        loader = DataLoader(VideoClipsDataset(train, *self.test_clip_fns(), rt.skipped_log),
                            batch_size=max(1, self.feature_batch_size // per_video), shuffle=True,
                            generator=torch.Generator().manual_seed(self.seed), num_workers=rt.num_workers,
                            collate_fn=collate_skip_none)

        def clips():
            while True:
                decoded = 0
                for batch in loader:
                    if batch is not None:
                        decoded += 1
                        yield batch["clips"].flatten(0, 1).to(rt.device)  # fp32: statistics at full precision
                if not decoded:
                    raise RuntimeError("no training video decoded for the batch-norm statistics")
        return with_population_statistics(encoder.to(rt.device), clips(), min(self.bn_batches, len(loader)))

    def frozen_features(self, encoder) -> Dict[str, Any]:
        """The frozen encoder's features of :meth:`videos` (``[N, clips x crops, D]``), extracted once
        per encoder state and shared by the protocols that read them (linear probe, kNN), with
        ``rows``: each split's train and test rows of the videos that decoded."""
        from evaluation.batch_norm import lacks_running_statistics
        from evaluation.features import cached_features, weights_hash
        key = weights_hash(encoder)
        if key not in self._features:
            records = self.videos()
            index_fn, view_fn = self.test_clip_fns()
            if lacks_running_statistics(encoder):
                encoder = self.with_population_statistics(encoder)
            rt = self.runtime
            settings = {"encoder": self.encoder_name, "frames": self.frames, "size": self.test_size or self.size,
                        "clips": self.clips_per_video, "crops": self.spatial_crops, "stride": self.frame_stride}
            if self.target_fps is not None:  # absent when unset: earlier caches stay valid
                settings["fps"] = self.target_fps
            per_video = self.clips_per_video * self.spatial_crops
            feats = cached_features(rt.cache_dir or Path("feature_cache"), settings, encoder, records,
                                    weights=weights_hash(encoder), index_fn=index_fn, view_fn=view_fn, device=rt.device,
                                    batch_size=max(1, self.feature_batch_size // per_video),
                                    num_workers=rt.num_workers, skipped_log=rt.skipped_log,
                                    precision_ctx=rt.precision_ctx, progress=rt.progress)
            index = {r.path: i for i, r in enumerate(records)}
            rows = lambda recs: torch.tensor([index[r.path] for r in recs if feats["valid"][index[r.path]]])
            split_rows = {s: (rows(train), rows(test)) for s, (train, test) in self.splits.items()}
            self._features[key] = {**feats, "rows": split_rows}
        return self._features[key]
