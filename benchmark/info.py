"""``python -m benchmark info encoder=NAME``: parameters, GFLOPs per clip (fvcore) and the shape
of every named feature map; the paper's parameter count beside the measured one."""
from __future__ import annotations

import hydra
import torch
from tabulate import tabulate

from benchmark.cli_common import CONFIG_DIR, user_errors_exit
from encoders import build_encoder_from_config

HEAD_400 = {"slow_r50": 2048 * 400 + 400}  # REFERENCE counts Slow R-50 with its 400-way classifier


def describe(cfg) -> str:
    enc = build_encoder_from_config(cfg.encoder).eval()
    t, s = cfg.encoder.frames, cfg.encoder.size
    params = sum(p.numel() for p in enc.parameters())
    with torch.no_grad():
        maps = enc(torch.zeros(cfg.batch, 3, t, s, s))
    lines = [f"encoder {cfg.encoder.name}: input 3 x {t} x {s} x {s}",
             f"parameters: {params / 1e6:.3f}M (measured)"]
    if cfg.encoder.name in HEAD_400:
        lines.append(f"parameters with the 400-way head: {(params + HEAD_400[cfg.encoder.name]) / 1e6:.3f}M")
    if cfg.encoder.get("params_reported_m"):
        lines.append(f"parameters reported by the paper: {cfg.encoder.params_reported_m}M")
    if cfg.flops:
        from benchmark.run import count_flops
        lines.append(f"GFLOPs per clip (fvcore, 1 MAC = 1 FLOP): {count_flops(enc, t, s):.2f}")
        if cfg.encoder.get("gflops_reported"):
            lines.append(f"GFLOPs reported: {cfg.encoder.gflops_reported} (at the paper's input size)")
    rows = [[k, "x".join(map(str, v.shape[1:]))] for k, v in maps.items()]
    return "\n".join(lines) + "\n" + tabulate(rows, headers=["feature map", "C x T x H x W"])


@hydra.main(config_path=CONFIG_DIR, config_name="info", version_base="1.3")
@user_errors_exit
def main(cfg) -> None:
    print(describe(cfg))
