"""From a run's config to evaluation's inputs, checked and read once before pretraining:
the evaluated dataset (the pretraining one, or ``eval.dataset`` at ``eval.dataset_root``), every
split's train and test lists, and the test-clip settings (:class:`evaluation.data.EvalData`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from benchmark.data.pipeline import eval_sampler, records_for
from benchmark.errors import UserError
from evaluation import EvalData, EvalRuntime, check_eval_config
from encoders import takes_other_sizes
from evaluation.subsets import class_balanced_subset, describe_subset

log = logging.getLogger("benchmark.run")


def eval_dataset_config(cfg):
    """The dataset evaluated on: the pretraining dataset, or ``configs/dataset/<eval.dataset>.yaml``
    rooted at ``eval.dataset_root`` (e.g. Kinetics-600 pretraining, UCF-101 fine-tuning: Table 3)."""
    name = cfg.eval.dataset
    if name in (None, cfg.dataset.name):
        return cfg.dataset
    from benchmark.compose import group_choices, group_config
    from benchmark.errors import unknown_choice
    choices = group_choices("dataset")
    if name not in choices:
        raise unknown_choice("eval.dataset", name, choices)
    ds = group_config("dataset", name)
    if cfg.eval.dataset_root:
        ds.root = cfg.eval.dataset_root
    elif name != "synthetic":
        raise UserError(f"eval.dataset={name} needs eval.dataset_root=/path/to/{name}")
    return ds


def plan_evaluation(cfg, labelled_split: Optional[int] = None) -> Optional[EvalData]:
    """Every evaluation setting checked and every split's lists read (so a missing split file fails
    before pretraining, not after it); None when ``eval.protocols`` is empty.

    ``labelled_split``: the pretraining split of a method that read its labels. Its training labels
    include other splits' test videos, so on its own dataset only that split is evaluated.
    """
    ev = cfg.eval
    ds = eval_dataset_config(cfg)
    check_eval_config(ev, ds.format)
    if ev.test_size not in (None, cfg.encoder.size) and not takes_other_sizes(cfg.encoder.name):
        raise UserError(f"bad eval.test_size {ev.test_size}: encoder {cfg.encoder.name} takes {cfg.encoder.size} px "
                        "clips only; valid choices: null or that size")
    test_clips = eval_sampler(cfg.encoder, ev.clips_per_video, ev.spatial_crops, ev.frame_stride,
                              size=ev.test_size, target_fps=ev.target_fps)  # they fit
    if not ev.protocols:
        return None
    splits = list(ev.splits)
    if labelled_split is not None and ds is cfg.dataset and splits != [labelled_split]:
        log.warning("%s: evaluating split %d only (its training labels include the test videos of the other splits)",
                    cfg.method.name, labelled_split)
        splits = [labelled_split]
        cfg.eval.splits = splits  # result.json's config says what was evaluated
    lists, classes = {}, None
    for s in splits:
        train, classes = records_for(ds, s, "train")
        test, _ = records_for(ds, s, "test")
        train = class_balanced_subset(train, len(classes), ev.train_examples, ev.train_examples_per_class, ev.subset_seed)
        lists[s] = (train, test)
    return EvalData(dataset=ds.name, splits=lists, classes=classes, encoder_name=cfg.encoder.name,
                    train_subset=describe_subset(ev.train_examples, ev.train_examples_per_class, ev.subset_seed),
                    frames=cfg.encoder.frames, size=cfg.encoder.size, test_size=ev.test_size or cfg.encoder.size,
                    clips_per_video=ev.clips_per_video,
                    spatial_crops=ev.spatial_crops, frame_stride=ev.frame_stride, target_fps=ev.target_fps,
                    feature_batch_size=ev.feature_batch_size, bn_batches=ev.bn_batches, seed=cfg.seed, test_clips=test_clips)


def eval_runtime(cfg, device, run_dir: Path, skipped_log: str) -> EvalRuntime:
    cache = Path(cfg.eval.cache_dir) if cfg.eval.cache_dir else Path(cfg.results_dir).parent / "feature_cache"
    return EvalRuntime(device=device, precision=cfg.trainer.precision, bf16_conv_check=cfg.trainer.bf16_conv_check,
                       num_workers=cfg.trainer.num_workers,
                       progress=cfg.trainer.progress, skipped_log=skipped_log, run_dir=run_dir,
                       resume=cfg.trainer.resume == "auto", cache_dir=cache)
