"""Evaluation of any encoder (pretrained, random or supervised): it never knows how the
encoder was trained, and never reads the run's config. ``evaluate`` runs the named protocols
(:data:`evaluation.protocols.PROTOCOLS`: ``linear``, ``knn``, ``finetune``) on
:class:`evaluation.data.EvalData` and summarises each over the splits; a protocol's per-video
predictions (``per_video``) come back beside the summary, for paired comparisons."""
from __future__ import annotations

import logging
from typing import Dict, List

from benchmark.data.splits import OFFICIAL_SPLITS, check_split
from benchmark.errors import UserError, check_minimums, check_positive
from evaluation import linear_probe, finetune, knn_retrieval  # noqa: F401,I001  (each registers its protocol, in this order)
from evaluation.aggregate import split_summary
from evaluation.data import EvalData, EvalRuntime  # noqa: F401  (the package's interface)
from evaluation.protocols import PROTOCOLS

log = logging.getLogger(__name__)

# the least value of each evaluation count (rates: above 0)
EVAL_MINIMUMS = {"clips_per_video": 1, "feature_batch_size": 1, "linear.epochs": 1, "linear.batch_size": 1,
                 "finetune.steps": 1, "finetune.batch_size": 1, "finetune.blocks": 1, "finetune.window_stride": 1,
                 "knn.k": 1, "bn_batches": 1}


def check_eval_config(ev, dataset_format: str) -> None:
    """Bad evaluation settings fail here, before any work: the protocols and their own checks, the
    counts and rates, and the split numbers for the evaluated dataset's format."""
    bad = [p for p in ev.protocols if p not in PROTOCOLS]
    if bad:
        raise UserError(f"unknown eval protocol '{bad[0]}'; valid choices: {', '.join(PROTOCOLS)}")
    check_minimums("eval", ev, EVAL_MINIMUMS)
    check_positive("eval", ev, ["linear.lr", "finetune.lr"])
    for name in ev.protocols:
        if PROTOCOLS[name].check is not None:
            PROTOCOLS[name].check(ev[name])
    if ev.protocols and not ev.splits:
        raise UserError(f"eval.splits is empty; valid choices: {', '.join(map(str, OFFICIAL_SPLITS))}")
    for s in ev.splits:
        check_split(s, dataset_format)


def split_line(per_protocol: Dict[str, Dict[str, float]]) -> str:
    """``linear 43.1 | knn 27.8 (R@1 27.8, R@5 61.1)``: one split's top-1 per protocol, one decimal."""
    parts = []
    for proto, values in per_protocol.items():
        recalls = ", ".join(f"{k} {v:.1f}" for k, v in values.items() if k.startswith("R@"))
        parts.append(f"{proto} {values['top1']:.1f}" + (f" ({recalls})" if recalls else ""))
    return " | ".join(parts)


def result_entry(name: str, cfg, data: EvalData, per_split: Dict[int, Dict[str, float]]) -> Dict:
    """One protocol's result.json entry: top-1 per split with its mean and std over the splits,
    every other metric (``R@k``) summarised alike, and the protocol's own description."""
    entry = {"protocol": name, "dataset": data.dataset, "metric": "top1",
             **split_summary({s: v["top1"] for s, v in per_split.items()}),
             "clips_per_video": data.clips_per_video, "spatial_crops": data.spatial_crops,
             "train_videos": {str(s): len(data.splits[s][0]) for s in per_split}}
    if data.train_subset:
        entry["train_subset"] = data.train_subset
    entry.update(PROTOCOLS[name].describe(cfg, data))
    for metric in (k for k in next(iter(per_split.values())) if k not in ("top1", "per_video")):
        entry[metric] = split_summary({s: v[metric] for s, v in per_split.items()})
    predictions = {str(s): v["per_video"] for s, v in per_split.items() if "per_video" in v}
    if predictions:
        entry["per_video"] = predictions  # benchmark.run moves it from result.json to predictions.json
    return entry


def evaluate(encoder, protocols: List[str], protocol_configs, data: EvalData) -> List[Dict]:
    """Each of ``protocols`` with its config ``protocol_configs[name]`` on ``data``; one result entry
    each, and one log line per split."""
    results = {name: PROTOCOLS[name].run(encoder, protocol_configs[name], data) for name in protocols}
    for split in data.splits:
        per_protocol = {name: r[split] for name, r in results.items() if split in r}
        if per_protocol:
            log.info("split %d: %s", split, split_line(per_protocol))
    return [result_entry(name, protocol_configs[name], data, per_split) for name, per_split in results.items()]
