"""``python -m benchmark perf``: the performance suite, measured in one process, one run.

Sections (``sections=[...]``): ``data`` (clips/s of decode + views + augmentation, ours
vs PyTorchVideo's ``Ucf101`` with stock transforms on the same files), ``train`` (clips/s
of forward + backward + step per method, fp32 and bf16, vs PyTorchVideo's reference
``SimCLR`` on the same backbone), ``efficiency`` (achieved FLOP/s as a share of the
measured matmul peak), ``eval`` (linear probe on cached features vs recomputing them every
epoch), ``scaling`` (time of the VDIM loss as batch and locations grow). Writes
``perf.json`` and ``perf.md`` under ``results_dir/<time>_<device>/``.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import hydra
import torch
from tabulate import tabulate

from benchmark.cli_common import CONFIG_DIR, user_errors_exit


def timed(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def matmul_peak(device, dtype, n=1024) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sec = timed(lambda: (a @ b, torch.cuda.synchronize() if device.type == "cuda" else None), 5)
    return 2 * n ** 3 / sec


def section_data(cfg, rows):
    from benchmark import compat  # noqa: F401
    from benchmark.data.datasets import PretrainStream
    from benchmark.data.pipeline import records_for, train_sampler
    from methods import method_config
    from torch.utils.data import DataLoader
    records, _ = records_for(cfg.dataset, 1, "train")
    n_batches = 4
    for mname in ("vdim", "rho_simclr"):
        mcfg = method_config(mname, **({"views": {"frames": cfg.encoder.frames}} if mname == "vdim" else
                                       {"clips": {"frames": cfg.encoder.frames, "stride": cfg.dataset.frame_stride}}))
        mcfg.augment.crop_size = cfg.encoder.size
        for w in cfg.workers:
            stream = PretrainStream(records, *train_sampler(mcfg, cfg.encoder), cfg.batch_size, n_batches, 0)
            t = time.perf_counter()
            clips = sum(len(b["views"]) * b["views"][0].shape[0] for b in DataLoader(stream, batch_size=None, num_workers=w))
            rows.append({"section": "data", "what": f"ours {mname} views", "workers": w,
                         "clips_per_s": clips / (time.perf_counter() - t)})
    from pytorchvideo.data import Ucf101, make_clip_sampler
    from pytorchvideo.transforms import ApplyTransformToKey, UniformTemporalSubsample
    from torchvision.transforms import Compose, Lambda, RandomResizedCrop
    lists = Path(records[0].path).parents[2] / "ucfTrainTestlist" / "trainlist01.txt"
    fps = cfg.dataset.get("fps", 25)
    tf = ApplyTransformToKey("video", Compose([UniformTemporalSubsample(cfg.encoder.frames), Lambda(lambda x: x / 255.0),
                                               RandomResizedCrop(cfg.encoder.size, antialias=True)]))
    for w in cfg.workers:
        ds = Ucf101(str(lists), make_clip_sampler("random", cfg.encoder.frames / fps), transform=tf,
                    video_path_prefix=str(Path(records[0].path).parents[1]), decode_audio=False)
        t, clips = time.perf_counter(), 0
        for b in DataLoader(ds, batch_size=cfg.batch_size, num_workers=w):
            clips += b["video"].shape[0]
            if clips >= n_batches * cfg.batch_size * 2:
                break
        rows.append({"section": "data", "what": "PyTorchVideo Ucf101 + stock transforms (1 clip/sample)", "workers": w,
                     "clips_per_s": clips / (time.perf_counter() - t)})


def train_step_rate(model_fn, params, clips: int, device, precision: str, repeats: int) -> float:
    from benchmark.trainer import autocast_for
    opt = torch.optim.SGD(params, lr=1e-3)

    def step():
        with autocast_for(device, precision):
            loss = model_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return clips / timed(step, repeats)


def section_train(cfg, rows, device):
    from encoders import build_encoder_from_config
    from methods import build_method
    b, e = cfg.batch_size, cfg.encoder
    views = [torch.randn(b, 3, e.frames, e.size, e.size, device=device) for _ in range(2)]
    for precision in ("fp32", "bf16"):
        for mname in ("vdim", "rho_simclr", "rho_moco", "rho_byol", "rho_swav"):
            torch.manual_seed(0)
            kw = {"queue_size": 4096} if mname == "rho_moco" else {}
            m = build_method(mname, build_encoder_from_config(e), **kw).to(device).train()
            rate = train_step_rate(lambda: m(views)["loss"], [p for p in m.parameters() if p.requires_grad], 2 * b, device,
                                   precision, cfg.repeats)
            rows.append({"section": "train", "what": f"ours {mname}", "precision": precision, "clips_per_s": rate})
        try:
            from pytorchvideo.models.simclr import SimCLR
            torch.manual_seed(0)
            enc = build_encoder_from_config(e)
            backbone = torch.nn.Sequential()
            backbone.forward = lambda x: enc(x)["global"]  # same backbone as ours
            from methods.heads import MLPHead
            ref = SimCLR(MLPHead(enc.global_dim, 2048, 128), backbone, temperature=0.1).to(device)
            enc.to(device)
            params = list(enc.parameters()) + list(ref.mlp.parameters())
            rate = train_step_rate(lambda: ref(views[0], views[1]), params, 2 * b, device, precision, cfg.repeats)
            rows.append({"section": "train", "what": "PyTorchVideo SimCLR (reference)", "precision": precision, "clips_per_s": rate})
        except Exception as ex:  # the reference may change API; say so instead of failing the suite
            rows.append({"section": "train", "what": "PyTorchVideo SimCLR (reference)", "precision": precision,
                         "note": f"unavailable: {type(ex).__name__}: {ex}"[:120]})


def section_efficiency(cfg, rows, device):
    from benchmark.run import count_flops
    from encoders import build_encoder_from_config
    peaks = {p: matmul_peak(device, d) for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    for r in [r for r in rows if r["section"] == "train" and r["what"] == "ours vdim" and "clips_per_s" in r]:
        gflops = count_flops(build_encoder_from_config(cfg.encoder), cfg.encoder.frames, cfg.encoder.size) * 2  # MAC -> FLOP
        achieved = gflops * 1e9 * 3 * r["clips_per_s"]
        rows.append({"section": "efficiency", "what": f"vdim encoder step {cfg.encoder.frames}x{cfg.encoder.size}",
                     "precision": r["precision"], "achieved_gflop_s": achieved / 1e9,
                     "peak_gflop_s": peaks[r["precision"]] / 1e9, "fraction_of_peak": achieved / peaks[r["precision"]]})


def section_scaling(cfg, rows, device):
    from methods.losses import vdim_nce
    for b in (8, 16, 32):
        for na in (27, 125, 343):
            a = torch.randn(b, 128, na, device=device, requires_grad=True)
            c = torch.randn(b, 128, 1, device=device)
            sec = timed(lambda: vdim_nce(a, c).backward(), max(1, cfg.repeats // 2))
            rows.append({"section": "scaling", "what": f"vdim_nce B={b} locations={na}", "seconds": sec})


@hydra.main(config_path=CONFIG_DIR, config_name="perf", version_base="1.3")
@user_errors_exit
def main(cfg) -> None:
    from benchmark.distributed import resolve_device
    device = resolve_device(cfg.trainer.device)
    rows = []
    for name in cfg.sections:
        fn = {"data": section_data, "train": section_train, "efficiency": section_efficiency,
              "scaling": section_scaling}.get(name)
        if fn is None:
            from benchmark.errors import UserError
            raise UserError(f"perf section '{name}' is not implemented yet; implemented: data, train, efficiency, scaling")
        print(f"perf: {name} ...", flush=True)
        fn(cfg, rows) if name == "data" else fn(cfg, rows, device)
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out = Path(cfg.results_dir) / f"{stamp}_{device.type}"
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": stamp, "device": dev, "torch": torch.__version__, "rows": rows}
    from benchmark.checkpoint import atomic_write_bytes, atomic_write_json
    atomic_write_json(out / "perf.json", report)
    md = f"# perf {stamp} on {dev}\n\n" + tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3g") + "\n"
    atomic_write_bytes(out / "perf.md", lambda f: f.write(md.encode()))
    print(md)
    print(f"wrote {out / 'perf.json'}")
