"""How the suite times things: every candidate in turns, one call of each per round, the median of
the rounds (:func:`rates_in_turns`), and the matrix-multiply peak the efficiency section divides by."""
from __future__ import annotations

import statistics
import time

import torch


def against_target(ratio: float, target: float) -> dict:
    """The columns every target row carries: the measured ratio, the target, met, missed by."""
    return {"ratio": ratio, "target": target, "met": ratio >= target, "missed_by": max(0.0, target - ratio)}


def synchronize(device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously), so that a timed call's
    time is its work's; nothing to wait for on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``repeats`` calls after ``warmup`` untimed ones (the first calls of a
    shape build oneDNN primitives and grow the allocator; the median ignores a stray slow call):
    :func:`rates_in_turns` with one candidate."""
    return 1.0 / rates_in_turns({"fn": (fn, 1)}, repeats, warmup)["fn"]


def matmul_step(device, dtype, n: int | None = None):
    """``(step, flop)`` of one ``n x n`` matrix product: 2048 on CPU, 8192 on CUDA (smaller ones
    leave a GPU partly idle and would understate its peak). Timed in turns with the step it is the
    peak of (:func:`benchmark.perf.efficiency.section_efficiency`): on this shared CPU the measured bf16 peak moved 2.2x
    within ten minutes (755 and 1680 GFLOP/s), so a peak taken apart from the step is no scale for it."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)

    def step():
        a @ b
        synchronize(device)
    return step, 2 * n ** 3


def copy_bandwidth(device, nbytes: int, repeats: int) -> float:
    """Bytes/s of a copy of ``nbytes`` bytes (read once, written once), timed alone, warm: the best
    bandwidth a pass over a map of that size reaches here, the generous price of memory traffic for
    a ceiling. (In turns right after a Table 1 training step on this CPU one copy of its largest
    batch-2 map, 34 MB, ran at 25 GB/s, sixteen back to back at 47, and alone at 53.)"""
    src = torch.ones(nbytes, device=device, dtype=torch.uint8)
    dst = torch.empty_like(src)

    def step():
        dst.copy_(src)
        synchronize(device)
    return 2 * nbytes / timed(step, max(repeats, 9), warmup=5)


def step_fn(model_fn, params, device, precision: str, threads: int | None = None, make_optimizer=None):
    """One training step as a callable: forward under the precision's autocast, backward, SGD
    step, or ``make_optimizer(params)``'s (and a CUDA sync, so the time is the step's).
    ``threads``: torch threads during it."""
    from benchmark.trainer import autocast_for
    opt = make_optimizer(params) if make_optimizer else torch.optim.SGD(params, lr=1e-3)

    def step():
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            with autocast_for(device, precision):
                loss = model_fn()
            opt.zero_grad()
            loss.backward()
            opt.step()
            synchronize(device)
        finally:
            torch.set_num_threads(before)
    return step


def round_rates_in_turns(steps: dict, repeats: int, warmup: int = 2) -> dict:
    """Clips/s of each ``name: (step, clips)`` in every round, timed in turns, one call of each
    per round, so that every candidate meets the same machine state (clock, caches, background
    load); a candidate measured alone after another is up to 15% off on this CPU."""
    for step, _ in steps.values():
        for _ in range(warmup):
            step()
    rates = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, clips) in steps.items():
            t = time.perf_counter()
            step()
            rates[name].append(clips / (time.perf_counter() - t))
    return rates


def rates_in_turns(steps: dict, repeats: int, warmup: int = 2) -> dict:
    """The median over rounds of :func:`round_rates_in_turns`."""
    return {name: statistics.median(r) for name, r in round_rates_in_turns(steps, repeats, warmup).items()}
