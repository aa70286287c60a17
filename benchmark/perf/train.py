"""The train section: every method's training step (forward + backward + optimizer) against
PyTorchVideo's reference ``SimCLR`` and ``BYOL`` on the same backbone, batch and precision, all
timed in turns, with each speed lever flipped from the trainer's setting beside it."""
from __future__ import annotations

import statistics
import time

import torch

from benchmark.perf.allocator_lever import allocator_lever_rows
from benchmark.perf.timing import against_target, round_rates_in_turns, step_fn

METHODS = ("vdim", "rho_simclr", "rho_moco", "rho_byol", "rho_swav")
COMPARED = {"rho_simclr": "PyTorchVideo SimCLR (reference)", "rho_byol": "PyTorchVideo BYOL (reference)"}
COMPILE_ON = "torch.compile on"  # the lever's label when the trainer runs eager; its ratio rows match on it
TARGET_VS_REFERENCE = 1.5  # target: our step at least 1.5x PyTorchVideo's


def ours_step(cfg, mname: str, views, device, precision: str, channels_last: bool, compile: bool,
              threads: int | None = None):
    """``(step, clips)`` of one of our methods as the trainer runs it: ``channels_last`` and
    ``compile`` as ``trainer.channels_last`` / ``trainer.compile`` (compiled in the untimed
    warm-up), ``threads`` as ``trainer.threads``."""
    from benchmark.bf16_conv_guard import guard_where_needed
    from benchmark.trainer import apply_speed_levers, in_layout
    from encoders import build_encoder_from_config
    from methods import build_method
    torch.manual_seed(0)
    kw = {"queue_size": 4096} if mname == "rho_moco" else {}
    m = build_method(mname, build_encoder_from_config(cfg.encoder), **kw).to(device).train()
    apply_speed_levers(m, channels_last, compile)
    views = in_layout(views, channels_last)
    guard_where_needed(m, lambda probe: probe(views), device, precision)  # as the trainer's first step
    step = step_fn(lambda: m(views)["loss"], [p for p in m.parameters() if p.requires_grad], device, precision, threads)
    return step, views[0].shape[0] * len(views)


def reference_step(build, cfg, views, device, precision: str):
    """``(step, clips)`` of a PyTorchVideo reference model on our backbone, as PyTorchVideo runs it:
    contiguous layout, eager, the process's threads."""
    from encoders import build_encoder_from_config
    torch.manual_seed(0)
    ref = build(build_encoder_from_config(cfg.encoder).to(device)).to(device)
    step = step_fn(lambda: ref(views[0], views[1]), [p for p in ref.parameters() if p.requires_grad], device, precision)
    return step, 2 * views[0].shape[0]


def lever_variants(cfg, device) -> dict:
    """The levers measured on the VDIM step, each flipped from the trainer's default:
    label -> keyword overrides of :func:`ours_step`."""
    t = cfg.trainer
    out = {}
    if "channels_last" in cfg.levers:
        out[f"channels_last_3d {'off' if t.channels_last else 'on'}"] = {"channels_last": not t.channels_last}
    if "compile" in cfg.levers:
        out["torch.compile off" if t.compile else COMPILE_ON] = {"compile": not t.compile}
    if "one_thread" in cfg.levers and device.type != "cuda" and torch.get_num_threads() > 1:
        out["1 torch thread"] = {"threads": 1}
    return out


def lever_steps(cfg, device, precision: str) -> dict:
    """``"ours <method>, <lever>" -> {"method", "overrides"}``: every lever on the VDIM step, and
    ``torch.compile`` also on the steps compared with PyTorchVideo's in the trainer's precision,
    so that the table shows what the one lever that fuses the step's elementwise work does to
    the target, and at what one-time cost (``first_step_s``)."""
    out = {}
    for label, kw in lever_variants(cfg, device).items():
        methods = ["vdim"]
        if kw.get("compile") and precision == cfg.trainer.precision:
            methods += list(COMPARED)
        out.update({f"ours {m}, {label}": {"method": m, "overrides": kw} for m in methods})
    return out


def compile_payoff(first_step_s: float, clips: int, rate: float, eager_rate: float) -> dict:
    """What compiling costs once and when it has paid: ``compile_s``, the first call's seconds
    beyond a compiled step's, and ``pays_after_steps``, that over the seconds each step saves
    (absent when the compiled step is not faster)."""
    compile_s = max(0.0, first_step_s - clips / rate)
    saved = clips / eager_rate - clips / rate
    return {"compile_s": compile_s, **({"pays_after_steps": compile_s / saved} if saved > 0 else {})}


def inductor_cache_counts() -> tuple:
    """(hits, misses) of inductor's on-disk graph cache so far in this process."""
    from torch._dynamo.utils import counters
    return counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]


def inductor_cache_state(before: tuple, after: tuple) -> str:
    """``"cold"`` when a compile generated and built code anew (the first run on a machine, or
    after a change to the encoder or torch), ``"warm"`` when every graph came from inductor's
    on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, kept between runs)."""
    hits, misses = after[0] - before[0], after[1] - before[1]
    return "cold" if misses else "warm" if hits else "in process"


def build_and_call_once(builders: dict, compiled: set) -> tuple:
    """Builds every ``name: build`` step and calls it once, so that one that cannot run is
    reported, not fatal (``torch.compile`` without a C++ toolchain, a changed reference API).
    Each step in ``compiled`` traces and compiles for itself, as its own run would (the others
    re-trace in the untimed warm-up). Returns ``(steps, notes, first_call_s, compile_cache)``."""
    steps, notes, first, cache = {}, {}, {}, {}
    for name, build in builders.items():
        try:
            if name in compiled:
                torch._dynamo.reset()
            counts = inductor_cache_counts()
            steps[name] = build()
            start = time.perf_counter()
            steps[name][0]()
            first[name] = time.perf_counter() - start
            if name in compiled:
                cache[name] = inductor_cache_state(counts, inductor_cache_counts())
        except Exception as ex:
            steps.pop(name, None)
            notes[name] = f"unavailable: {type(ex).__name__}: {ex}"[:120]
    return steps, notes, first, cache


def train_views(cfg, device) -> list:
    """The train section's two clips per sample, random, at the encoder's input size."""
    e = cfg.encoder
    return [torch.randn(cfg.batch_size, 3, e.frames, e.size, e.size, device=device) for _ in range(2)]


def section_train(cfg, rows, device):
    """Every method's step and PyTorchVideo's SimCLR and BYOL on the same backbone and batch, per
    precision, all timed in turns (:func:`rates_in_turns`). "ours" is the step as the trainer
    runs it (``trainer.channels_last``, ``trainer.compile``); each lever row flips one of them."""
    t = cfg.trainer
    views = train_views(cfg, device)
    default = {"channels_last": t.channels_last, "compile": t.compile}
    rounds = {}  # (what, precision) -> clips/s in each round
    for precision in ("fp32", "bf16"):
        levers = lever_steps(cfg, device, precision)
        builders = {f"ours {m}": (lambda m=m: ours_step(cfg, m, views, device, precision, **default)) for m in METHODS}
        builders.update({name: (lambda v=v: ours_step(cfg, v["method"], views, device, precision, **{**default, **v["overrides"]}))
                         for name, v in levers.items()})
        builders.update({f"{name} (reference)": (lambda build=build: reference_step(build, cfg, views, device, precision))
                         for name, build in REFERENCES.items()})
        compiled = {name for name, v in levers.items() if v["overrides"].get("compile")}
        steps, notes, first, cache = build_and_call_once(builders, compiled)
        per_round = round_rates_in_turns(steps, cfg.repeats, warmup=1)
        rates = {name: statistics.median(r) for name, r in per_round.items()}
        for name in builders:
            row = {"section": "train", "what": name, "precision": precision}
            if name in notes:
                rows.append({**row, "note": notes[name]})
                continue
            row["clips_per_s"] = rates[name]
            rounds[(name, precision)] = per_round[name]
            if name in levers:
                plain = f"ours {levers[name]['method']}"
                row["ratio"] = rates[name] / rates[plain]
                if name in cache:
                    row["first_step_s"], row["compile_cache"] = first[name], cache[name]
                    row.update(compile_payoff(first[name], steps[name][1], rates[name], rates[plain]))
            rows.append(row)
        if "allocator" in cfg.levers and precision == t.precision:
            rows += allocator_lever_rows("train", compared_steps, cfg, precision)
    rows += reference_ratios(rows, rounds)


def compared_steps(cfg, precision: str) -> dict:
    """The VDIM step, the two compared with PyTorchVideo's and those two references, as the train
    section builds them (for a process of :func:`allocator_lever_rows`)."""
    from benchmark.distributed import resolve_device
    device = resolve_device(cfg.trainer.device)
    t = cfg.trainer
    views = train_views(cfg, device)
    steps = {f"ours {m}": ours_step(cfg, m, views, device, precision, t.channels_last, t.compile) for m in ("vdim", *COMPARED)}
    steps.update({f"{r} (reference)": reference_step(build, cfg, views, device, precision) for r, build in REFERENCES.items()})
    return steps


def reference_ratios(rows, rounds: dict):
    """Ours over PyTorchVideo's step, per precision, with the target and by how much it is missed
    (and the same for our compiled step where the train section measured one);
    ``round_min`` and ``round_max`` bound the ratio of the two steps timed in the same round
    (``rounds``: (what, precision) -> clips/s per round), the spread a single run carries."""
    rate = {(r["what"], r["precision"]): r["clips_per_s"] for r in rows if r["section"] == "train" and "clips_per_s" in r}
    out = []
    for method, ref in COMPARED.items():
        for ours in (f"ours {method}", f"ours {method}, {COMPILE_ON}"):
            for precision in ("fp32", "bf16"):
                if (ours, precision) in rate and (ref, precision) in rate:
                    same_round = [a / b for a, b in zip(rounds[(ours, precision)], rounds[(ref, precision)])]
                    out.append({"section": "train", "what": f"{ours} / {ref}", "precision": precision,
                                **against_target(rate[(ours, precision)] / rate[(ref, precision)], TARGET_VS_REFERENCE),
                                "round_min": min(same_round), "round_max": max(same_round)})
    return out


class GlobalFeatures(torch.nn.Module):
    """Our encoder as the plain backbone PyTorchVideo's models expect: video -> ``[B, D]``."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder(x)["global"]


def _ptv_simclr(enc):
    from pytorchvideo.models.simclr import SimCLR

    from methods.heads import MLPHead
    return SimCLR(MLPHead(enc.global_dim, 2048, 128), GlobalFeatures(enc), temperature=0.1)


def _ptv_byol(enc):
    from pytorchvideo.models.byol import BYOL
    return BYOL(GlobalFeatures(enc), feature_dim=enc.global_dim, predictor_inner=4096, mmt=0.99,
                norm=torch.nn.BatchNorm1d)  # its default SyncBatchNorm needs a GPU process group


REFERENCES = {"PyTorchVideo SimCLR": _ptv_simclr, "PyTorchVideo BYOL": _ptv_byol}
