"""Encoders behind one interface: ``forward(video [B,3,T,H,W]) -> {name: map, ..., "global": [B,D]}``."""
from __future__ import annotations

from typing import Callable, Dict

from torch import nn

from encoders.feature_encoder import FeatureEncoder
from encoders.pytorchvideo_backbones import build_r2plus1d_r18, build_slow_r50, build_x3d_s
from encoders.r2d3d import build_r2d3d
from encoders.r3d import build_r3d_18
from encoders.vdim import build_vdim

ENCODERS: Dict[str, Callable[..., FeatureEncoder]] = {
    "vdim": lambda **kw: build_vdim(**{"layout": "table1", **kw}),
    "vdim_small": lambda **kw: build_vdim(**{"layout": "small", "frames": 16, "size": 64, "ndf": 32,
                                             "n_1x1": 1, "head_dim": 256, **kw}),
    "slow_r50": build_slow_r50,
    "r2plus1d_r18": build_r2plus1d_r18,
    "x3d_s": build_x3d_s,
    "r2d3d_18": lambda **kw: build_r2d3d(**{"depth": 18, **kw}),
    "r2d3d_34": lambda **kw: build_r2d3d(**{"depth": 34, **kw}),
    "r3d_18": build_r3d_18,
}
CONFIG_ONLY_KEYS = ("params_reported_m", "gflops_reported", "pretrained")
FIXED_INPUT = ("vdim", "vdim_small")  # their blocks' kernels fit one input size (Table 1): no other test size


def takes_other_sizes(name: str) -> bool:
    """Whether encoder ``name`` takes clips of another size than its config's (globally pooled)."""
    return name not in FIXED_INPUT


def build_encoder(name: str, **overrides) -> nn.Module:
    """Build encoder ``name`` (see :data:`ENCODERS`); ``overrides`` are its config keys."""
    if name not in ENCODERS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("encoder", name, ENCODERS)
    kwargs = {k: v for k, v in overrides.items() if k not in CONFIG_ONLY_KEYS and v is not None}
    kwargs.pop("name", None)
    if overrides.get("pretrained"):
        from benchmark.errors import UserError
        raise UserError("encoder.pretrained=true is not implemented yet: no weights can be downloaded; "
                        "load a checkpoint with trainer.resume=PATH instead")
    return ENCODERS[name](name=name, **kwargs)


def build_encoder_from_config(cfg) -> nn.Module:
    from omegaconf import OmegaConf
    return build_encoder(**OmegaConf.to_container(cfg, resolve=True))
