"""The sharing section: the default run's pretraining step alone, and with a second default run
on the same machine at the same time.

Each run is the real CLI (``python -m benchmark run``) in a process of its own, at the default
settings but for ``sharing_steps`` steps and no evaluation, writing into a temporary folder. Its
time per step is the pretraining loop's (``result.json``: ``pretrain.seconds`` over the steps),
so start-up and evaluation are not in it. Two runs that each use every core should each take
about twice as long per step as one alone (``ideal``: 2); a ratio far above that means the
runs fight for the cores rather than share them. The pair is timed twice: at the default
(``trainer.adaptive_threads``, :mod:`benchmark.cpu_share`) and, as the reference, with every
run keeping torch's full thread pool.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from benchmark.errors import UserError


def run_command(results_dir: Path, steps: int, seed: int, extra: List[str]) -> List[str]:
    return [sys.executable, "-m", "benchmark", "run", f"trainer.steps={steps}", "eval.protocols=[]",
            "trainer.progress=false", f"trainer.checkpoint_every={steps}", f"seed={seed}", f"results_dir={results_dir}",
            *extra]


def seconds_per_step(results_dir: Path) -> float:
    result = json.loads(next(results_dir.glob("*/result.json")).read_text())
    return result["pretrain"]["seconds"] / result["pretrain"]["steps"]


def timed_runs(root: Path, count: int, steps: int, extra: List[str] = ()) -> List[float]:
    """Start ``count`` default runs (with the ``extra`` overrides) at once; each one's pretraining
    seconds per step."""
    folders = [root / f"run{i}" for i in range(count)]
    procs = [subprocess.Popen(run_command(f, steps, i, list(extra)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for i, f in enumerate(folders)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise UserError(f"perf sharing: a run failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
    return [seconds_per_step(f) for f in folders]


def sharing_rows(alone: float, together: List[float], full_pools: List[float]) -> List[dict]:
    """The time per step of the slower of each pair over the run's alone (``ratio``)."""
    rows = [{"section": "sharing", "what": "one default run alone", "s_per_step": alone}]
    for what, pair in (("two default runs at once (the slower)", together),
                       ("two runs at once, trainer.adaptive_threads=false (the slower)", full_pools)):
        rows.append({"section": "sharing", "what": what, "s_per_step": max(pair), "ratio": max(pair) / alone,
                     "ideal": 2.0})
    return rows


def section_sharing(cfg, rows, device):
    if device.type != "cpu":
        return  # two runs on one GPU is another question; this measures the shared CPU
    with tempfile.TemporaryDirectory(prefix="vdim-bench-sharing-") as tmp:
        root = Path(tmp)
        (alone,) = timed_runs(root / "alone", 1, cfg.sharing_steps)
        time.sleep(1.0)
        together = timed_runs(root / "together", 2, cfg.sharing_steps)
        time.sleep(1.0)
        full_pools = timed_runs(root / "full_pools", 2, cfg.sharing_steps, ["trainer.adaptive_threads=false"])
    rows += sharing_rows(alone, together, full_pools)
