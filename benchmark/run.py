"""``python -m benchmark run``: pretrain the chosen method, evaluate it, write result.json.

Data flows one way: dataset -> sampler/views -> encoder -> method loss -> optimizer; then
the frozen or fine-tuned encoder -> evaluation -> result.json (written atomically).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from benchmark import __version__
from benchmark.allocator import use_allocator
from benchmark.checkpoint import atomic_write_json
from benchmark.cli_common import CONFIG_DIR, user_errors_exit
from benchmark.data.datasets import count_skipped
from benchmark.data.pipeline import batch_augment, records_for, train_view_fn
from benchmark.data.samplers import at_frame_rate
from benchmark.distributed import (agree_on_run_dir, check_sync_bn, export_launcher_env, init_distributed,
                                   leave_process_group, resolve_device)
from benchmark.host import describe_host
from benchmark.trainer import MetricsLog, PretrainData, check_trainer_numbers, pretrain
from encoders import build_encoder_from_config
from methods import method_class

log = logging.getLogger("benchmark.run")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def count_flops(encoder, frames: int, size: int) -> float:
    """GFLOPs per clip by fvcore (one multiply-add counted as one FLOP, fvcore's convention)."""
    from fvcore.nn import FlopCountAnalysis
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            fl = FlopCountAnalysis(encoder, torch.zeros(1, 3, frames, size, size, device=next(encoder.parameters()).device))
            fl.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return fl.total() / 1e9
    finally:
        encoder.train(was)


def print_summary(result: dict) -> None:
    from tabulate import tabulate
    rows = []
    for e in result["evals"]:
        per = " / ".join("-" if v is None else f"{v:.1f}" for v in e["splits"].values())
        rows.append([e["protocol"], e["dataset"], f"{e['mean']:.1f} ± {e['std']:.1f}", per, e["test_protocol"]])
        if e["protocol"] == "knn":
            rows.append(["  retrieval", e["dataset"], "  ".join(f"{k} {e[k]['mean']:.1f}" for k in e if k.startswith("R@")), "", ""])
    print(f"\n{result['method']} on {result['encoder']} ({result['params_m']:.2f}M params), run {result['run_id']}")
    print(tabulate(rows, headers=["protocol", "data", "top-1 mean ± std", "splits 1/2/3", "test protocol"]))
    print(f"skipped videos: {result['skipped_videos']}\n")


def data_version(ds):
    """The synthetic generator's format version (its videos change with it); None for real data."""
    if ds.name != "synthetic":
        return None
    from benchmark.data.synthetic import FORMAT_VERSION
    return FORMAT_VERSION


def log_evaluation(metrics: MetricsLog, evals: list, step: int) -> None:
    """Every protocol's per-split top-1 (and R@k), mean and std into ``metrics.csv`` and TensorBoard
    beside the pretraining scalars, as phase ``eval`` at the last pretraining step, keyed
    ``<protocol>/<dataset>/split<k>`` and ``<protocol>/<dataset>/mean|std``."""
    for e in evals:
        prefix = f"{e['protocol']}/{e['dataset']}"
        values = {f"{prefix}/split{k}": v for k, v in e["splits"].items() if v is not None}
        values.update({f"{prefix}/{k}": e[k] for k in ("mean", "std") if e[k] is not None})
        for recall in (k for k in e if k.startswith("R@")):
            values.update({f"{prefix}/{recall}/split{k}": v for k, v in e[recall]["splits"].items() if v is not None})
        metrics.log(step, values, prefix="eval")


def pretrain_subset(cfg, method_cls) -> str:
    """Which videos of the pretraining split are read: ``dataset.pretrain_subset`` for
    self-supervised methods; the train list only for a method that reads labels."""
    return "train" if method_cls.uses_labels else cfg.dataset.pretrain_subset


def check_method_batch(method_cls, batch_size: int) -> None:
    """A pretraining batch holds at least the clips the method needs (its ``min_batch_size``)."""
    from benchmark.errors import UserError
    if method_cls.pretrains and batch_size < method_cls.min_batch_size:
        raise UserError(f"bad trainer.batch_size {batch_size}: method {method_cls.name} needs >= "
                        f"{method_cls.min_batch_size} clips per batch (batch norm's training statistics; another "
                        "video as a negative)")


def pretraining_views(cfg, method_cls):
    """The method's sampler and views and the trainer's half of device augmentation, built (and so
    checked) once, before any data is read; None for a method that does not pretrain."""
    if not method_cls.pretrains:
        return None
    sampler = at_frame_rate(method_cls.clip_sampler(cfg.method, cfg.encoder), cfg.dataset.target_fps)
    view_fn = train_view_fn(cfg.method.augment, cfg.encoder, cfg.trainer.augment_on)
    on_device = batch_augment(cfg.method.augment, cfg.encoder, cfg.trainer.augment_on)
    return PretrainData([], sampler, view_fn, on_device)


def run(cfg) -> dict:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    allocator = use_allocator(cfg.trainer.allocator)  # recorded in result.json, not printed
    log.debug("allocator: %s", allocator)
    export_launcher_env()
    device = resolve_device(cfg.trainer.device, int(os.environ.get("LOCAL_RANK", "0")))
    check_sync_bn(cfg.trainer.sync_bn, device)
    dist_info = init_distributed(device)
    run_dir = agree_on_run_dir(run_dir, dist_info)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    seed_everything(cfg.seed + dist_info.rank)
    from benchmark.eval_plan import eval_runtime, plan_evaluation
    check_trainer_numbers(cfg.trainer)  # bad settings fail here, before any data is written or read
    method_cls = method_class(cfg.method.name)
    check_method_batch(method_cls, cfg.trainer.batch_size)
    views = pretraining_views(cfg, method_cls)
    pre_split = cfg.dataset.split
    # last: it reads every split's lists (writing the synthetic set on first use)
    eval_data = plan_evaluation(cfg, labelled_split=pre_split if method_cls.uses_labels else None)
    skipped_log = str(run_dir / "skipped_videos.txt")
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    subset = pretrain_subset(cfg, method_cls)
    records, classes = records_for(cfg.dataset, pre_split, subset)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    encoder = build_encoder_from_config(cfg.encoder)
    params_m = sum(p.numel() for p in encoder.parameters()) / 1e6
    gflops = count_flops(encoder, cfg.encoder.frames, cfg.encoder.size)  # before trainer.compile: fvcore traces eager
    method = method_cls(encoder, cfg.method, len(classes))
    metrics = MetricsLog(run_dir, dist_info.is_main)
    pre = None
    if views is not None:
        pre = pretrain(cfg, method, dataclasses.replace(views, records=records), run_dir, device, dist_info,
                       skipped_log, metrics)
    leave_process_group(dist_info)
    if not dist_info.is_main:
        metrics.close()
        return None
    encoder = method.encoder
    evals = []
    if eval_data is not None:
        from evaluation import evaluate
        eval_data.runtime = eval_runtime(cfg, device, run_dir, skipped_log)
        evals = evaluate(encoder, list(cfg.eval.protocols), cfg.eval, eval_data)
        write_predictions(run_dir, evals)
    result = {
        "run_id": run_dir.name, "created": created, "version": __version__, "git_commit": git_commit(),
        "host": describe_host(device),
        "command": " ".join(["python -m benchmark run", *HydraConfig.get().overrides.task]),
        "method": cfg.method.name, "encoder": cfg.encoder.name, "params_m": round(params_m, 3),
        "params_reported_m": cfg.encoder.get("params_reported_m"),
        "gflops_per_clip": round(gflops, 3),
        "input": {"frames": cfg.encoder.frames, "size": cfg.encoder.size},
        "experiment": cfg.get("experiment_name"),
        "pretrain": {"dataset": cfg.dataset.name, "split": pre_split, "subset": subset,
                     "steps": pre.steps if pre else 0, "batch_size": cfg.trainer.batch_size if pre else 0,
                     "world_size": dist_info.world_size, "clips_seen": pre.clips_seen if pre else 0,
                     "seconds": round(pre.seconds, 1) if pre else 0.0,
                     "final_loss": pre.final_loss if pre else None, "precision": cfg.trainer.precision,
                     "threads": pre.threads if pre else None, "skipped_steps": pre.skipped_steps if pre else 0,
                     "fp32_weight_gradients": pre.fp32_weight_gradients if pre else [],
                     "device": str(device), "allocator": allocator, "data_version": data_version(cfg.dataset)},
        "evals": evals,
        "skipped_videos": count_skipped(skipped_log),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_json(run_dir / "result.json", result)
    log_evaluation(metrics, evals, result["pretrain"]["steps"])
    print_summary(result)
    print(f"result: {run_dir / 'result.json'}")
    metrics.close()
    return result


def write_predictions(run_dir: Path, evals: list) -> None:
    """Move each protocol's per-video predictions out of the result entries into
    ``predictions.json`` (``{protocol: {dataset, splits: {split: {videos, labels, predicted}}}}``),
    which ``compare --against`` pairs video by video between runs."""
    kept = {e["protocol"]: {"dataset": e["dataset"], "splits": e.pop("per_video")} for e in evals if "per_video" in e}
    if kept:
        atomic_write_json(run_dir / "predictions.json", kept)


FAILED_MARKER = "FAILED"  # a run folder holding it failed; its first line is the error


def record_failure(run_dir: Path, error: BaseException) -> None:
    """Write the error at the end of ``run.log`` (with its traceback, unless it is bad input) and
    mark the folder with ``FAILED``: ``compare`` never lists it, and ``trainer.resume=auto`` still
    continues from its checkpoints."""
    import traceback
    from benchmark.errors import UserError
    line = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    detail = "" if isinstance(error, UserError) else "".join(traceback.format_exception(error))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "run.log", "a") as f:
            f.write(f"[{dt.datetime.now().isoformat(sep=' ', timespec='seconds')}] run failed: {line}\n{detail}")
        (run_dir / FAILED_MARKER).write_text(line + "\n")
    except OSError:
        pass  # the folder itself is the problem: nothing to mark


def run_recording_failure(cfg) -> dict:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg)
    except (Exception, KeyboardInterrupt) as e:
        record_failure(run_dir, e)
        raise


@hydra.main(config_path=CONFIG_DIR, config_name="run", version_base="1.3")
@user_errors_exit
def main(cfg) -> None:
    run_recording_failure(cfg)


if __name__ == "__main__":
    sys.argv[0] = "benchmark run"
    main()
