"""``python -m benchmark perf``: the performance suite, measured in one process, one run.

Sections (``sections=[...]``): ``data`` (clips/s of decode + views + augmentation, ours
vs PyTorchVideo's ``Ucf101`` with stock transforms on the same files), ``train`` (clips/s
of forward + backward + step per method, fp32 and bf16, vs PyTorchVideo's reference
``SimCLR`` and ``BYOL`` on the same backbone, all steps timed in turns so that each meets the
same machine state), ``efficiency`` (achieved FLOP/s as a share of the measured matmul peak),
``eval`` (linear probe on cached features vs recomputing them every epoch), ``scaling`` (time
of the VDIM loss as batch and locations grow). "Ours" is the step as the trainer runs it
(``trainer.channels_last``, ``trainer.compile``); the references run as PyTorchVideo does.
Levers are rows beside what they change: decoding once per sample and colour jitter as one
affine map per clip (data), channels-last, ``torch.compile``, the thread count and the host
memory allocator, each flipped from the trainer's setting (``levers=[...]``, train;
``torch.compile`` and the allocator also on the two steps compared with PyTorchVideo's,
``torch.compile`` with its one-time cost), bf16 autocast (every train row).
Writes ``perf.json`` and ``perf.md`` under ``results_dir/<time>_<device>/``.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import torch
from torch import nn
from tabulate import tabulate

from benchmark.cli_common import CONFIG_DIR, user_errors_exit


def against_target(ratio: float, target: float) -> dict:
    """The columns every target row carries: the measured ratio, the target, met, missed by."""
    return {"ratio": ratio, "target": target, "met": ratio >= target, "missed_by": max(0.0, target - ratio)}


def timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``repeats`` calls after ``warmup`` untimed ones (the first calls of a
    shape build oneDNN primitives and grow the allocator; the median ignores a stray slow call):
    :func:`rates_in_turns` with one candidate."""
    return 1.0 / rates_in_turns({"fn": (fn, 1)}, repeats, warmup)["fn"]


def matmul_step(device, dtype, n: int | None = None):
    """``(step, flop)`` of one ``n x n`` matrix product: 2048 on CPU, 8192 on CUDA (smaller ones
    leave a GPU partly idle and would understate its peak). Timed in turns with the step it is the
    peak of (:func:`section_efficiency`): on this shared CPU the measured bf16 peak moved 2.2x
    within ten minutes (755 and 1680 GFLOP/s), so a peak taken apart from the step is no scale for it."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)

    def step():
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step, 2 * n ** 3


def perf_method_config(cfg, mname: str, **augment):
    """Method ``mname``'s config at the perf encoder's input; ``augment`` overrides keys of its
    augmentation."""
    from methods import method_config
    mcfg = method_config(mname, **({"views": {"frames": cfg.encoder.frames}} if mname == "vdim" else
                                   {"clips": {"frames": cfg.encoder.frames, "stride": cfg.dataset.frame_stride}}))
    mcfg.augment.crop_size = cfg.encoder.size
    for key, value in augment.items():
        mcfg.augment[key] = value
    return mcfg


def pretrain_sampler(cfg, mname: str, augment_on: str = "workers", **augment):
    """``(index_fn, view_fn)`` of method ``mname``'s pretraining sampler (:func:`perf_method_config`)."""
    from benchmark.data.pipeline import train_sampler
    return train_sampler(perf_method_config(cfg, mname, **augment), cfg.encoder, augment_on)


def section_data(cfg, rows, device):
    """Clips/s of our VDIM and rho-clip pretraining streams and of PyTorchVideo's ``Ucf101`` with
    its stock transforms on the same files, per worker count, timed in turns
    (:func:`rates_in_turns`: each round reads ``data_batches`` batches per worker from a fresh
    loader of each, worker start-up included for all alike; several batches per worker, since a
    worker makes whole batches and one left over would time a single worker), then the levers
    of the data pipeline."""
    from benchmark import compat  # noqa: F401
    from benchmark.data.datasets import PretrainStream
    from benchmark.data.batch_augment import AUGMENT_ON, step_generator
    from benchmark.data.pipeline import batch_augment, records_for
    from torch.utils.data import DataLoader
    records, _ = records_for(cfg.dataset, 1, "train")
    b = cfg.batch_size
    streams = ("vdim", "rho_simclr")
    samplers = {(m, on): pretrain_sampler(cfg, m, on) for m in streams for on in AUGMENT_ON}
    finish = {m: batch_augment(perf_method_config(cfg, m), cfg.encoder, "device") for m in streams}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ref = "PyTorchVideo Ucf101 + stock transforms (1 clip/sample)"

    def ours(mname, w, n_batches, on="workers"):  # two views or clips per sample
        def run():
            loader = DataLoader(PretrainStream(records, *samplers[mname, on], b, n_batches, 0), batch_size=None,
                                num_workers=w, pin_memory=device.type == "cuda")
            for batch in loader:
                if on != "device":
                    continue
                for k, v in enumerate(batch["views"]):  # as the trainer does: to the device, then colour, grey, blur, normalise
                    finish[mname](v.to(device, non_blocking=True), step_generator(0, batch["step"], 0, k))
            sync()
        return run

    def reference(w, n_batches):  # one clip per sample: twice the batches for the same number of clips
        ds = ptv_ucf101(cfg, records, videos=4 * n_batches * b)

        def run():
            clips = 0
            for i, batch in enumerate(DataLoader(ds, batch_size=b, num_workers=w)):
                clips += batch["video"].shape[0]
                if i + 1 == 2 * n_batches:
                    break
            if clips != n_batches * b * 2:  # a stream that ended early would inflate the rate
                raise RuntimeError(f"PyTorchVideo's Ucf101 gave {clips} clips, not {n_batches * b * 2}")
        return run

    for w in cfg.workers:
        n_batches = cfg.data_batches * max(1, w)
        clips = n_batches * b * 2
        rates = rates_in_turns({**{data_row(m, on): (ours(m, w, n_batches, on), clips)
                                   for on in AUGMENT_ON for m in streams},
                                ref: (reference(w, n_batches), clips)}, cfg.repeats, warmup=1)
        rows += [{"section": "data", "what": what, "workers": w, "clips_per_s": rate} for what, rate in rates.items()]
        rows.append({"section": "data", "what": "ours vdim views / PyTorchVideo Ucf101", "workers": w,
                     **against_target(rates["ours vdim views"] / rates[ref], TARGET_DATA)})
    rows.append(decode_once_lever(cfg, records))
    rows.append(affine_jitter_lever(cfg, records))
    rows.append(rgb_conversion_lever(cfg, records))
    rows.append(device_augment_lever(cfg, records, device))


def data_row(mname: str, augment_on: str) -> str:
    """The data section's name for method ``mname``'s stream with ``trainer.augment_on``."""
    return f"ours {mname} views" + (", augmented on the device" if augment_on == "device" else "")


def ptv_ucf101(cfg, records, videos: int):
    """PyTorchVideo's own ``Ucf101`` over our split-1 train list, with its stock transforms
    (uniform temporal subsample, scale to [0, 1], random resized crop). Its video sampler draws
    ``videos`` with replacement, so that, like our step-counted stream, it does not end after
    one clip per video (one epoch, split across the workers), which on a small set comes before
    the clips a round times. PyTorchVideo lists the whole sampler, so ``videos`` stays finite."""
    from pytorchvideo.data import Ucf101, make_clip_sampler
    from pytorchvideo.transforms import ApplyTransformToKey, UniformTemporalSubsample
    from torchvision.transforms import Compose, Lambda, RandomResizedCrop
    lists = Path(records[0].path).parents[2] / "ucfTrainTestlist" / "trainlist01.txt"
    fps = cfg.dataset.get("fps", 25)
    tf = ApplyTransformToKey("video", Compose([UniformTemporalSubsample(cfg.encoder.frames), Lambda(lambda x: x / 255.0),
                                               RandomResizedCrop(cfg.encoder.size, antialias=True)]))
    with_replacement = partial(torch.utils.data.RandomSampler, replacement=True, num_samples=videos)
    return Ucf101(str(lists), make_clip_sampler("random", cfg.encoder.frames / fps), video_sampler=with_replacement,
                  transform=tf, video_path_prefix=str(Path(records[0].path).parents[1]), decode_audio=False)


def decode_once_lever(cfg, records, n_videos: int = 16) -> dict:
    """The decode-once lever, in this process: VDIM's two views from one decode of the frames they
    span (:func:`benchmark.data.datasets.load_views`) against one decode per view, timed in turns."""
    from benchmark.data.datasets import load_views
    from benchmark.data.decode import decode_frames, probe
    index_fn, view_fn = pretrain_sampler(cfg, "vdim")
    paths = [r.path for r in records[:n_videos]]

    def per_view(path, rng):
        views = index_fn(probe(path)[0], rng)
        return [view_fn(decode_frames(path, v), k) for k, v in enumerate(views)]

    def over_paths(load):
        rng = np.random.default_rng(0)
        return lambda: [load(p, rng) for p in paths]

    rate = rates_in_turns({"once": (over_paths(lambda p, rng: load_views(p, index_fn, view_fn, rng)), 2 * len(paths)),
                           "per view": (over_paths(per_view), 2 * len(paths))}, cfg.repeats, warmup=1)
    return {"section": "data", "what": "ours vdim views, decode once per sample (vs once per view)", "workers": 0,
            "clips_per_s": rate["once"], "ratio": rate["once"] / rate["per view"]}


def affine_jitter_lever(cfg, records, n_videos: int = 16) -> dict:
    """The fused-augmentation lever, in this process: VDIM's views with colour jitter as one 3x3
    map per clip (:class:`benchmark.data.augment.AffineColorJitter`, ``augment.jitter_impl=affine``)
    against torchvision's ``ColorJitter``, decode and all, timed in turns."""
    from benchmark.data.datasets import load_views
    paths = [r.path for r in records[:n_videos]]

    def views_with(impl: str):
        index_fn, view_fn = pretrain_sampler(cfg, "vdim", jitter_impl=impl)
        rng = np.random.default_rng(0)
        return lambda: [load_views(p, index_fn, view_fn, rng) for p in paths]

    rate = rates_in_turns({impl: (views_with(impl), 2 * len(paths)) for impl in ("affine", "torchvision")},
                          cfg.repeats, warmup=1)
    return {"section": "data", "what": "ours vdim views, affine colour jitter (vs torchvision ColorJitter)",
            "workers": 0, "clips_per_s": rate["affine"], "ratio": rate["affine"] / rate["torchvision"]}


def rgb_conversion_lever(cfg, records, n_videos: int = 16) -> dict:
    """The colour-conversion lever: decoded YUV frames to RGB through one reused single-threaded
    swscale context (:func:`benchmark.data.decode.rgb_converter`) against PyAV's per-frame
    conversion as PyTorchVideo's decoder calls it (``frame.to_rgb().to_ndarray()``). Frames/s."""
    import av
    from benchmark.data.decode import rgb_converter
    frames = []
    for r in records[:n_videos]:
        with av.open(r.path) as container:
            frames += list(container.decode(video=0))

    def ours():
        convert = rgb_converter()
        return [convert(f) for f in frames]

    rate = rates_in_turns({"ours": (ours, len(frames)),
                           "pyav": (lambda: [f.to_rgb().to_ndarray() for f in frames], len(frames))},
                          cfg.repeats, warmup=1)
    return {"section": "data", "what": "frames/s to RGB, one 1-thread swscale per video (vs PyAV per frame)",
            "workers": 0, "clips_per_s": rate["ours"], "ratio": rate["ours"] / rate["pyav"]}


def device_augment_lever(cfg, records, device, n_videos: int = 16) -> dict:
    """The augment-on-device lever (``trainer.augment_on=device``), in this process: rho-SimCLR's
    clips of ``n_videos`` videos in batches of ``batch_size``, augmented whole in the loader
    (the default) against cropped in the loader and coloured, greyed, blurred and normalised per
    view's batch on ``device`` (:mod:`benchmark.data.batch_augment`), each up to a batch on
    ``device``, decode included, timed in turns. On CUDA the second moves that work off the CPU."""
    from benchmark.data.batch_augment import step_generator
    from benchmark.data.datasets import load_views
    from benchmark.data.pipeline import batch_augment
    batches = [[r.path for r in records[i:i + cfg.batch_size]] for i in range(0, n_videos, cfg.batch_size)]
    mcfg = perf_method_config(cfg, "rho_simclr")
    finish = batch_augment(mcfg, cfg.encoder, "device")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def views_of(augment_on: str):
        index_fn, view_fn = pretrain_sampler(cfg, "rho_simclr", augment_on)

        def run():
            rng = np.random.default_rng(0)
            for step, paths in enumerate(batches):
                views = [torch.stack(v).to(device) for v in zip(*[load_views(p, index_fn, view_fn, rng) for p in paths])]
                if augment_on == "device":
                    views = [finish(v, step_generator(0, step, 0, k)) for k, v in enumerate(views)]
            sync()
        return run

    clips = 2 * sum(map(len, batches))
    rate = rates_in_turns({on: (views_of(on), clips) for on in ("device", "workers")}, cfg.repeats, warmup=1)
    return {"section": "data", "what": f"ours rho_simclr clips, colour/grey/blur/normalise on {device.type} per batch "
                                       "(vs in the loader per clip)",
            "workers": 0, "clips_per_s": rate["device"], "ratio": rate["device"] / rate["workers"]}


TARGET_DATA = 2.0  # issue "Performance": data pipeline at least 2x PyTorchVideo's stock one


def bottleneck_rows(rows, augment_on: str):
    """Is the data pipeline the bottleneck of the default run? Its best clips/s with the trainer's
    ``augment_on`` over the VDIM training step's clips/s in bf16 (above 1: the step waits for
    nothing; with ``device``, the step also shares its device with the augmentation)."""
    data = [r["clips_per_s"] for r in rows if r["section"] == "data" and r["what"] == data_row("vdim", augment_on)]
    step = [r["clips_per_s"] for r in rows if r["section"] == "train" and r["what"] == "ours vdim" and r["precision"] == "bf16" and "clips_per_s" in r]
    if not (data and step):
        return []
    return [{"section": "summary", "what": "data clips/s over VDIM bf16 step clips/s (>1: data is not the bottleneck)",
             "ratio": max(data) / step[0], "met": max(data) / step[0] > 1}]


def step_fn(model_fn, params, device, precision: str, threads: int | None = None):
    """One training step as a callable: forward under the precision's autocast, backward, SGD
    step (and a CUDA sync, so the time is the step's). ``threads``: torch threads during it."""
    from benchmark.trainer import autocast_for
    opt = torch.optim.SGD(params, lr=1e-3)

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
            if device.type == "cuda":
                torch.cuda.synchronize()
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


def ours_step(cfg, mname: str, views, device, precision: str, channels_last: bool, compile: bool,
              threads: int | None = None):
    """``(step, clips)`` of one of our methods as the trainer runs it: ``channels_last`` and
    ``compile`` as ``trainer.channels_last`` / ``trainer.compile`` (compiled in the untimed
    warm-up), ``threads`` as ``trainer.threads``."""
    from benchmark.trainer import apply_speed_levers, in_layout
    from encoders import build_encoder_from_config
    from methods import build_method
    torch.manual_seed(0)
    kw = {"queue_size": 4096} if mname == "rho_moco" else {}
    m = build_method(mname, build_encoder_from_config(cfg.encoder), **kw).to(device).train()
    apply_speed_levers(m, channels_last, compile)
    views = in_layout(views, channels_last)
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


METHODS = ("vdim", "rho_simclr", "rho_moco", "rho_byol", "rho_swav")
COMPARED = {"rho_simclr": "PyTorchVideo SimCLR (reference)", "rho_byol": "PyTorchVideo BYOL (reference)"}
COMPILE_ON = "torch.compile on"  # the lever's label when the trainer runs eager; its ratio rows match on it


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


def allocator_child(conn, allocator: str, build, cfg_container: dict, precision: str) -> None:
    """A fresh (spawned) process whose malloc has run under ``allocator`` from its start: builds
    ``build(cfg, precision)``'s steps, names them (or says why it could not), then times the step
    named in each message, answering ``(clips/s, pages faulted in)``, until it receives None."""
    from omegaconf import OmegaConf

    from benchmark.allocator import minor_page_faults, use_allocator
    use_allocator(allocator)
    try:
        steps = build(OmegaConf.create(cfg_container), precision)
    except Exception as ex:  # reported by the parent as the lever's note
        conn.send(f"{type(ex).__name__}: {ex}")
        return
    conn.send(list(steps))
    while (name := conn.recv()) is not None:
        step, clips = steps[name]
        before, start = minor_page_faults(), time.perf_counter()
        step()
        conn.send((clips / (time.perf_counter() - start), minor_page_faults() - before))


def allocator_lever_rows(section: str, build, cfg, precision: str) -> list:
    """``trainer.allocator`` flipped (benchmark/allocator.py) on the steps ``build(cfg, precision)``
    makes. malloc's settings hold for a whole process and its heap keeps what they did, so each
    setting gets a fresh process of its own (spawned: a forked one would inherit this process's
    heap); the two hold their models side by side and step one at a time, in turns, as
    :func:`round_rates_in_turns` does within a process (two untimed rounds first). ``ratio``: the
    median over rounds of the flipped setting's clips/s over the trainer's setting's, each pair
    timed back to back; ``page_faults_per_step``: the flipped setting's, beside the trainer's."""
    import multiprocessing

    from omegaconf import OmegaConf
    mine, other = cfg.trainer.allocator, "system" if cfg.trainer.allocator == "retain" else "retain"
    container = OmegaConf.to_container(cfg, resolve=True)
    ctx = multiprocessing.get_context("spawn")
    procs, conns = {}, {}
    try:
        for setting in (mine, other):
            conns[setting], theirs = ctx.Pipe()
            procs[setting] = ctx.Process(target=allocator_child, args=(theirs, setting, build, container, precision),
                                         daemon=True)
            procs[setting].start()
        names, other_names = (conns[s].recv() for s in (mine, other))
        for built in (names, other_names):
            if isinstance(built, str):
                raise ChildProcessError(built)
        rates = {(n, s): [] for n in names for s in (mine, other)}
        faults = {(n, s): [] for n in names for s in (mine, other)}
        for r in range(-2, cfg.repeats):
            for name in names:
                for setting in ((other, mine) if r % 2 == 0 else (mine, other)):
                    conns[setting].send(name)
                    rate, faulted = conns[setting].recv()
                    if r >= 0:
                        rates[(name, setting)].append(rate)
                        faults[(name, setting)].append(faulted)
    except (ChildProcessError, EOFError, OSError) as ex:
        return [{"section": section, "what": f"allocator {other}", "precision": precision,
                 "note": f"unavailable: {ex if isinstance(ex, ChildProcessError) else type(ex).__name__}"[:120]}]
    finally:
        for setting, conn in conns.items():
            try:
                conn.send(None)
            except OSError:
                pass
            procs[setting].join(timeout=30)
            if procs[setting].is_alive():
                procs[setting].terminate()
    med = statistics.median
    return [{"section": section, "what": f"{name}, allocator {other}", "precision": precision,
             "clips_per_s": med(rates[(name, other)]),
             "ratio": med([a / b for a, b in zip(rates[(name, other)], rates[(name, mine)])]),
             "page_faults_per_step": int(med(faults[(name, other)])),
             "page_faults_per_step_default": int(med(faults[(name, mine)]))}
            for name in names]


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


TARGET_VS_REFERENCE = 1.5  # issue "Performance": our step at least 1.5x PyTorchVideo's


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


TARGET_PEAK_FRACTION = 0.40  # issue "Performance": VDIM encoder step at 32x128x128, bf16


def prepared_encoder(name: str, build, batch: int, cfg, device) -> tuple:
    """``(encoder, input, what)``: an encoder in the trainer's layout, a batch for it, its row name."""
    from benchmark.trainer import apply_speed_levers, in_layout
    torch.manual_seed(0)
    enc = build().to(device).train()
    t, h, w = enc.input_shape
    apply_speed_levers(enc, cfg.trainer.channels_last, compile=False)  # the layout the trainer runs in
    x = in_layout([torch.randn(batch, 3, t, h, w, device=device)], cfg.trainer.channels_last)[0]
    return enc, x, f"{name} encoder step {t}x{h}x{w}, batch {batch}"


def encoder_step(enc, x, device, precision: str):
    """A training step of the encoder alone (its global features squared as the loss)."""
    return step_fn(lambda: enc(x)["global"].float().square().mean(), list(enc.parameters()), device, precision)


def convolution_calls(enc, x, precision: str) -> list:
    """``(conv, input, output_grad, needs_input_grad)`` for every convolution call of one training
    forward of ``enc``: random tensors of the shape, dtype and memory layout that call met, the input
    a leaf that requires a gradient where that call's did."""
    from benchmark.trainer import autocast_for
    calls = []

    def record(conv, args, out):
        like = args[0]
        inp = torch.empty_like(like).normal_().requires_grad_(like.requires_grad)
        calls.append((conv, inp, torch.empty_like(out).normal_(), like.requires_grad))
    hooks = [m.register_forward_hook(record) for m in enc.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    try:
        with autocast_for(x.device, precision):
            enc(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


def convolutions_step(enc, x, device, precision: str):
    """Every convolution of :func:`encoder_step`, forward and backward, one after another and nothing
    else: each module called as the step calls it (autocast's weight cast and the first layer's
    reflection padding included) on an input like the one it met there. Its time is what the step
    would take if it were all convolution: the ceiling the convolution library (oneDNN on CPU, cuDNN
    on CUDA) sets on the step's share of the matmul peak."""
    from benchmark.trainer import autocast_for
    # what each call differentiates, gathered once, outside the timed step
    calls = [(conv, inp, grad, ([inp] if needs_input_grad else []) + [p for p in conv.parameters() if p.requires_grad])
             for conv, inp, grad, needs_input_grad in convolution_calls(enc, x, precision)]

    def step():
        for conv, inp, grad, wrt in calls:
            with autocast_for(device, precision):
                out = conv(inp)
            torch.autograd.grad(out, wrt, grad)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def paper_encoder(cfg) -> tuple:
    """``(name, build, batch)`` of the Table 1 encoder at 32 x 128 x 128, which the target is set for."""
    from encoders import build_encoder
    return "vdim (Table 1)", lambda: build_encoder("vdim"), cfg.paper_batch


def paper_encoder_step(cfg, precision: str) -> dict:
    """The efficiency section's Table 1 encoder step (for a process of :func:`allocator_lever_rows`)."""
    from benchmark.distributed import resolve_device
    device = resolve_device(cfg.trainer.device)
    name, build, batch = paper_encoder(cfg)
    enc, x, what = prepared_encoder(name, build, batch, cfg, device)
    return {what: (encoder_step(enc, x, device, precision), batch)}


def efficiency_row(what: str, precision: str, clips_per_s: float, gflop_per_clip: float, peak: float, **extra) -> dict:
    """A row of the efficiency section: ``gflop_per_clip`` forward (x 3 with the backward) at
    ``clips_per_s``, over the ``peak`` FLOP/s timed in turns with it."""
    achieved = gflop_per_clip * 1e9 * 3 * clips_per_s
    return {"section": "efficiency", "what": what, "precision": precision, "clips_per_s": clips_per_s,
            "achieved_gflop_s": achieved / 1e9, "peak_gflop_s": peak / 1e9, "fraction_of_peak": achieved / peak, **extra}


def section_efficiency(cfg, rows, device):
    """Achieved FLOP/s of an encoder training step (fvcore MACs x 2 x 3 for forward and
    backward, times clips/s) over the matmul peak in the same precision, timed in turns with the
    step's convolutions alone (:func:`convolutions_step`; the same FLOPs over their time, the
    ceiling the step could reach if nothing but its convolutions took time) and the peak: the
    run's encoder, and with ``paper_resolution`` the Table 1 encoder at 32 x 128 x 128."""
    from benchmark.run import count_flops
    from encoders import build_encoder_from_config
    encoders = [(cfg.encoder.name, lambda: build_encoder_from_config(cfg.encoder), cfg.batch_size, None)]
    if cfg.paper_resolution:  # the target is set for the Table 1 encoder in bf16
        encoders.append((*paper_encoder(cfg), TARGET_PEAK_FRACTION))
    for name, build, batch, target in encoders:
        enc, x, what = prepared_encoder(name, build, batch, cfg, device)
        t, h, _ = enc.input_shape
        gflop = count_flops(enc, t, h) * 2  # fvcore counts one multiply-add as one
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rates = rates_in_turns({"step": (encoder_step(enc, x, device, precision), batch),
                                    "convolutions": (convolutions_step(enc, x, device, precision), batch),
                                    "peak": matmul_step(device, dtype)}, cfg.repeats)
            step = efficiency_row(what, precision, rates["step"], gflop, rates["peak"])
            if target and precision == "bf16":
                step.update(against_target(step["fraction_of_peak"], target))
            # the step's FLOPs over the convolutions' time alone, and that time's share of the step's
            rows += [step, efficiency_row(f"{what}: its convolutions alone, forward and backward", precision,
                                          rates["convolutions"], gflop, rates["peak"],
                                          share_of_step=rates["step"] / rates["convolutions"])]
            if target and "allocator" in cfg.levers and precision == cfg.trainer.precision:
                rows += allocator_lever_rows("efficiency", paper_encoder_step, cfg, precision)


def section_scaling(cfg, rows, device):
    """Time and memory of the VDIM loss (forward + backward) as the batch and the number of
    locations of both maps grow. Memory: CUDA's measured peak; on CPU (no allocator peak
    counter) the size of the largest score block the chunked loss holds, beside the full
    ``(B N) x (B N)`` score matrix an unchunked loss would hold."""
    from methods.losses import VDIM_CHUNK as chunk, vdim_nce
    for b in cfg.scaling_batches:
        for n in cfg.scaling_locations:
            a = torch.randn(b, 128, n, device=device, requires_grad=True)
            c = torch.randn(b, 128, n, device=device, requires_grad=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sec = timed(lambda: vdim_nce(a, c, chunk=chunk).backward(), max(1, cfg.repeats // 2))
            rows_per_chunk = min(b * n, max(1, chunk // n))
            row = {"section": "scaling", "what": f"vdim_nce B={b} locations={n}x{n}", "seconds": sec,
                   "score_block_mb": rows_per_chunk * b * n * 4 / 2 ** 20, "full_matrix_mb": (b * n) ** 2 * 4 / 2 ** 20}
            if device.type == "cuda":
                row["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
            rows.append(row)


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


LEVERS = ("channels_last", "compile", "one_thread", "allocator")
SECTIONS = {"data": section_data, "train": section_train, "efficiency": section_efficiency, "eval": section_eval,
            "scaling": section_scaling}


def markdown_tables(rows) -> str:
    """One table per section, with only the columns that section fills."""
    parts = []
    for section in dict.fromkeys(r["section"] for r in rows):
        sel = [{k: v for k, v in r.items() if k != "section"} for r in rows if r["section"] == section]
        cols = list(dict.fromkeys(k for r in sel for k in r))
        parts.append(f"### {section}\n\n" + tabulate([[r.get(c, "") for c in cols] for r in sel], headers=cols,
                                                       tablefmt="github", floatfmt=".3g") + "\n")
    return "\n".join(parts)


@hydra.main(config_path=CONFIG_DIR, config_name="perf", version_base="1.3")
@user_errors_exit
def main(cfg) -> None:
    from benchmark.allocator import use_allocator
    from benchmark.distributed import resolve_device
    from benchmark.errors import unknown_choice
    for kind, chosen, valid in (("perf section", cfg.sections, SECTIONS), ("perf lever", cfg.levers, LEVERS)):
        for name in chosen:
            if name not in valid:
                raise unknown_choice(kind, name, list(valid))
    allocator = use_allocator(cfg.trainer.allocator)
    device = resolve_device(cfg.trainer.device)
    rows = []
    for name in cfg.sections:
        print(f"perf: {name} ...", flush=True)
        SECTIONS[name](cfg, rows, device)
    rows += bottleneck_rows(rows, cfg.trainer.augment_on)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out = Path(cfg.results_dir) / f"{stamp}_{device.type}"
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": stamp, "device": dev, "torch": torch.__version__, "allocator": allocator, "rows": rows}
    from benchmark.checkpoint import atomic_write_bytes, atomic_write_json
    atomic_write_json(out / "perf.json", report)
    md = f"# perf {stamp} on {dev}, torch {torch.__version__}, allocator {allocator}\n\n" + markdown_tables(rows)
    atomic_write_bytes(out / "perf.md", lambda f: f.write(md.encode()))
    print(md)
    print(f"wrote {out / 'perf.json'}")
