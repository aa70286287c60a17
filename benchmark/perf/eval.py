"""The eval section: the linear probe on features cached once against re-running the frozen
encoder every epoch."""
from __future__ import annotations

import time

import torch

from benchmark.perf.timing import timed


def section_eval(cfg, rows, device):
    """Linear probe on features cached once vs the frozen encoder re-run every epoch (the cost
    without :mod:`evaluation.features`). Both are measured for ``eval_epochs_measured`` epochs
    on the same videos; the ratio at ``eval_epochs`` (the default probe's length) follows from
    the measured feature pass and probe epoch."""
    from benchmark.data.pipeline import eval_sampler, records_for
    from benchmark.trainer import autocast_for
    from encoders import build_encoder_from_config
    from evaluation.features import extract
    from evaluation.linear_probe import linear_probe
    records, classes = records_for(cfg.dataset, 1, "train")
    records = records[: cfg.eval_videos]
    encoder = build_encoder_from_config(cfg.encoder)
    index_fn, view_fn = eval_sampler(cfg.encoder, 1, 1, cfg.dataset.frame_stride)
    idx = torch.arange(len(records))

    def features():
        return extract(encoder, records, index_fn, view_fn, device, cfg.batch_size, 0, None,
                       autocast_for(device, cfg.trainer.precision), progress=False)

    def probe(f, epochs):
        return linear_probe(f["features"], f["labels"], idx, idx, len(classes), epochs=epochs)

    features()  # warm-up: decoder and kernels
    e = cfg.eval_epochs_measured
    t = time.perf_counter()
    f = features()
    probe(f, e)
    cached = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(e):
        probe(features(), 1)
    recompute = time.perf_counter() - t
    t_pass = timed(features, 1, warmup=0)
    t_epoch = timed(lambda: probe(f, 1), 3)
    n = cfg.eval_epochs
    what = f"linear probe, {len(records)} videos"
    rows += [
        {"section": "eval", "what": f"{what}, cached features, {e} epochs (measured)", "seconds": cached},
        {"section": "eval", "what": f"{what}, features recomputed every epoch, {e} epochs (measured)",
         "seconds": recompute, "speedup_of_cache": recompute / cached},
        {"section": "eval", "what": f"{what}, {n} epochs: 1 pass + {n} probe epochs vs {n} x (pass + epoch)",
         "seconds": t_pass + n * t_epoch, "speedup_of_cache": n * (t_pass + t_epoch) / (t_pass + n * t_epoch)},
    ]
