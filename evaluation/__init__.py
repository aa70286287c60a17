"""Evaluation of any encoder (pretrained, random or supervised): it never knows how the
encoder was trained. ``evaluate`` runs ``eval.protocols`` over ``eval.splits``."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

import torch

from benchmark.data.pipeline import eval_sampler, records_for
from benchmark.data.splits import OFFICIAL_SPLITS, check_split
from benchmark.errors import UserError, check_minimums, check_positive
from evaluation.aggregate import split_summary
from evaluation.features import cached_features
from evaluation.finetune import finetune_split
from evaluation.knn_retrieval import knn_retrieval
from evaluation.linear_probe import linear_probe

log = logging.getLogger(__name__)
PROTOCOLS = ("linear", "finetune", "knn")


def eval_dataset_config(cfg):
    """The dataset evaluated on: the pretraining dataset, or ``configs/dataset/<eval.dataset>.yaml``
    rooted at ``eval.dataset_root`` (e.g. Kinetics-600 pretraining, UCF-101 fine-tuning: Table 3)."""
    name = cfg.eval.dataset
    if name in (None, cfg.dataset.name):
        return cfg.dataset
    from benchmark.cli_common import group_choices, group_config
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


# the least value of each evaluation count (rates: above 0)
EVAL_MINIMUMS = {"clips_per_video": 1, "feature_batch_size": 1, "linear.epochs": 1, "linear.batch_size": 1,
                 "finetune.steps": 1, "finetune.batch_size": 1, "knn.k": 1}


def check_eval_dataset(cfg) -> None:
    """Bad evaluation settings fail here, before any pretraining: the protocols, the counts and
    rates, the split numbers, the evaluation dataset and its root, and every split's list."""
    bad = [p for p in cfg.eval.protocols if p not in PROTOCOLS]
    if bad:
        raise UserError(f"unknown eval protocol '{bad[0]}'; valid choices: {', '.join(PROTOCOLS)}")
    check_minimums("eval", cfg.eval, EVAL_MINIMUMS)
    check_positive("eval", cfg.eval, ["linear.lr", "finetune.lr"])
    ds = eval_dataset_config(cfg)
    if cfg.eval.protocols and not cfg.eval.splits:
        raise UserError(f"eval.splits is empty; valid choices: {', '.join(map(str, OFFICIAL_SPLITS))}")
    for s in cfg.eval.splits:
        check_split(s, ds.format)
    if cfg.eval.protocols:  # every split's lists are read now, not after pretraining
        for s in cfg.eval.splits:
            records_for(ds, s, "train")
            records_for(ds, s, "test")


def split_line(per_protocol: Dict[str, Dict[str, float]]) -> str:
    """``linear 43.1 | knn 27.8 (R@1 27.8, R@5 61.1)``: one split's top-1 per protocol, one decimal."""
    parts = []
    for proto, values in per_protocol.items():
        recalls = ", ".join(f"{k} {v:.1f}" for k, v in values.items() if k.startswith("R@"))
        parts.append(f"{proto} {values['top1']:.1f}" + (f" ({recalls})" if recalls else ""))
    return " | ".join(parts)


def evaluate(cfg, encoder, device, precision_ctx, run_dir: Path, skipped_log: str, progress: bool = True) -> List[Dict]:
    ev = cfg.eval
    check_eval_dataset(cfg)
    ds_cfg = eval_dataset_config(cfg)
    splits = {s: (records_for(ds_cfg, s, "train")[0], records_for(ds_cfg, s, "test")) for s in ev.splits}
    classes = next(iter(splits.values()))[1][1]
    protocol_text = f"{ev.clips_per_video} clips x {ev.spatial_crops} crops"
    results: Dict[str, Dict] = {}
    if {"linear", "knn"} & set(ev.protocols):
        by_path = {}
        for tr, (te, _) in splits.values():
            for r in tr + te:
                by_path.setdefault(r.path, r)
        records = list(by_path.values())
        pos = {r.path: i for i, r in enumerate(records)}
        index_fn, view_fn = eval_sampler(cfg.encoder, ev.clips_per_video, ev.spatial_crops, ev.frame_stride)
        cache_dir = Path(ev.cache_dir) if ev.cache_dir else Path(cfg.results_dir).parent / "feature_cache"
        key = {"encoder": cfg.encoder.name, "frames": cfg.encoder.frames, "size": cfg.encoder.size,
               "clips": ev.clips_per_video, "crops": ev.spatial_crops, "stride": ev.frame_stride}
        feats = cached_features(cache_dir, key, encoder, records, index_fn=index_fn, view_fn=view_fn, device=device,
                                batch_size=max(1, ev.feature_batch_size // (ev.clips_per_video * ev.spatial_crops)),
                                num_workers=cfg.trainer.num_workers, skipped_log=skipped_log,
                                precision_ctx=precision_ctx, progress=progress)
        f, y, valid = feats["features"], feats["labels"], feats["valid"]
        for s, (tr, (te, _)) in splits.items():
            tri = torch.tensor([pos[r.path] for r in tr if valid[pos[r.path]]])
            tei = torch.tensor([pos[r.path] for r in te if valid[pos[r.path]]])
            if "linear" in ev.protocols:
                acc = linear_probe(f, y, tri, tei, len(classes), ev.linear.epochs, ev.linear.lr, ev.linear.batch_size,
                                   ev.linear.weight_decay, cfg.seed)
                results.setdefault("linear", {})[s] = {"top1": acc}
            if "knn" in ev.protocols:
                r = knn_retrieval(f[tri].mean(1), y[tri], f[tei].mean(1), y[tei], list(ev.knn.recall_at), ev.knn.k,
                                  len(classes))
                results.setdefault("knn", {})[s] = r
            log.info("split %d: %s", s, split_line({p: results[p][s] for p in results}))
    if "finetune" in ev.protocols:
        for s, (tr, (te, _)) in splits.items():
            acc = finetune_split(encoder, ev.finetune, cfg.method.augment, tr, te, len(classes), cfg.encoder.frames,
                                 cfg.encoder.size, ev.clips_per_video, device, precision_ctx,
                                 run_dir / "finetune" / f"split{s}", cfg.seed, cfg.trainer.resume == "auto",
                                 cfg.trainer.num_workers, progress, skipped_log)
            results.setdefault("finetune", {})[s] = {"top1": acc}
    evals = []
    for proto, per_split in results.items():
        entry = {"protocol": proto, "dataset": ds_cfg.name, "metric": "top1",
                 **split_summary({s: per_split[s]["top1"] for s in per_split}),
                 "clips_per_video": ev.clips_per_video, "spatial_crops": ev.spatial_crops, "test_protocol": protocol_text}
        if proto == "knn":
            for k in ev.knn.recall_at:
                entry[f"R@{k}"] = split_summary({s: per_split[s][f"R@{k}"] for s in per_split})
        if proto == "finetune":
            entry["finetune_preset"] = ev.finetune.preset
            entry["test_protocol"] = f"{ev.clips_per_video} clips x {ev.finetune.views if ev.finetune.preset == 'vdim' else 1} views"
        evals.append(entry)
    return evals
