"""The data section: clips/s of our pretraining streams (decode + views + augmentation) against
PyTorchVideo's own ``Ucf101`` with its stock transforms on the same files, and the data pipeline's
levers, each timed in turns against the code without it."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmark.perf.timing import against_target, rates_in_turns, synchronize

TARGET_DATA = 2.0  # target: the data pipeline at least 2x PyTorchVideo's stock one


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
    from benchmark.data.pipeline import train_view_fn
    from methods import method_class
    mcfg = perf_method_config(cfg, mname, **augment)
    return method_class(mname).clip_sampler(mcfg, cfg.encoder), train_view_fn(mcfg.augment, cfg.encoder, augment_on)


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
    finish = {m: batch_augment(perf_method_config(cfg, m).augment, cfg.encoder, "device") for m in streams}
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
            synchronize(device)
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
    finish = batch_augment(mcfg.augment, cfg.encoder, "device")

    def views_of(augment_on: str):
        index_fn, view_fn = pretrain_sampler(cfg, "rho_simclr", augment_on)

        def run():
            rng = np.random.default_rng(0)
            for step, paths in enumerate(batches):
                views = [torch.stack(v).to(device) for v in zip(*[load_views(p, index_fn, view_fn, rng) for p in paths])]
                if augment_on == "device":
                    views = [finish(v, step_generator(0, step, 0, k)) for k, v in enumerate(views)]
            synchronize(device)
        return run

    clips = 2 * sum(map(len, batches))
    rate = rates_in_turns({on: (views_of(on), clips) for on in ("device", "workers")}, cfg.repeats, warmup=1)
    return {"section": "data", "what": f"ours rho_simclr clips, colour/grey/blur/normalise on {device.type} per batch "
                                       "(vs in the loader per clip)",
            "workers": 0, "clips_per_s": rate["device"], "ratio": rate["device"] / rate["workers"]}
