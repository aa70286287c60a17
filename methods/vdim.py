"""Video Deep InfoMax (Hjelm & Bachman 2020), sec. 3.3, eq. 1-4.

Antecedent layers J (view 1) against consequent layers J' (view 2), and the reverse
(J = {8}, J' = {5, 6, 8}), each pair scored at every location pair by
:func:`methods.losses.vdim_nce` and summed (eq. 4). phi_j are residual MLPs with
|Y| = ``head_dim``; phi_8 is the encoder's own global head, so the evaluated network is
phi_8 o Psi (sec. 4.1). Section 4.2 writes J = {5, 6, 9}: Table 1 has 8 blocks, so "9"
reads as the global block, block 8 here.

Temporal difference (sec. 3.3, Figure 3): the consequent map is split in half along
time and the element-wise difference of the halves replaces it. It needs a consequent
map with temporal extent >= 2: Table 1's block 8 is 1 x 1 x 1, where the difference is
undefined, so the option fails with a clear message instead of silently doing nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
from omegaconf import MISSING
from torch import nn

from benchmark.config import VDIMViewConfig
from benchmark.data.samplers import VDIMViews
from benchmark.errors import UserError
from methods.base import Method, MethodConfig, feature_shapes, gather_with_grad, rank, register_method
from methods.heads import LocalMLP
from methods.losses import vdim_nce

log = logging.getLogger(__name__)


def temporal_difference(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W] -> [B, C, T//2, H, W]``: later half minus earlier half."""
    half = x.shape[2] // 2
    return x[:, :, x.shape[2] - half:] - x[:, :, :half]


@dataclass
class VDIMConfig(MethodConfig):
    views: VDIMViewConfig = field(default_factory=VDIMViewConfig)
    antecedent: List[str] = MISSING  # J
    consequent: List[str] = MISSING  # J'
    symmetric: bool = MISSING  # also J' against J (sec. 3.3)
    temporal_difference: bool = MISSING
    head_dim: int = MISSING  # |Y|
    score_clip: float = MISSING  # AMDIM's c in c tanh(s / c)
    score_reg: float = MISSING  # AMDIM's weight on the mean squared raw score


@register_method
class VDIM(Method):
    name = "vdim"
    Config = VDIMConfig

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        """Two views of one window (sec. 3.1), each of the encoder's clip length."""
        v = cfg.views
        if v.frames != encoder_cfg.frames:
            raise UserError(f"bad clip length: VDIM views have {v.frames} frames but encoder "
                            f"'{encoder_cfg.name}' expects {encoder_cfg.frames}")
        return VDIMViews(v.frames, v.offset, tuple(v.downsample))

    def __init__(self, encoder: nn.Module, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        self.pairs: List[Tuple[str, str]] = [(j, jp) for j in cfg.antecedent for jp in cfg.consequent]
        if cfg.symmetric:
            self.pairs += [p for p in ((jp, j) for j in cfg.antecedent for jp in cfg.consequent) if p not in self.pairs]
        layers = sorted({l for p in self.pairs for l in p})
        shapes = feature_shapes(encoder)
        unknown = [l for l in layers if l not in shapes or l == "global"]
        if unknown:
            from benchmark.errors import unknown_choice
            raise unknown_choice("VDIM layer", unknown[0], [k for k in shapes if k != "global"])
        if cfg.temporal_difference:
            flat = [jp for _, jp in self.pairs if shapes[jp][2] < 2]
            if flat:
                raise UserError(f"method.temporal_difference=true needs consequent maps with time >= 2, but "
                                f"{flat[0]} has T'={shapes[flat[0]][2]}; use method.consequent=[block6] or "
                                f"method.temporal_difference=false")
        own_phi8 = getattr(getattr(encoder, "global_head", None), "phi", None)
        last = list(shapes)[-2]  # the block the encoder's phi_8 reads ("global" comes after it)
        shares = own_phi8 is not None and own_phi8.out_bn.num_features == cfg.head_dim
        self.phi = nn.ModuleDict({l: LocalMLP(shapes[l][1], cfg.head_dim) for l in layers if not (l == last and shares)})
        self.shared_phi = {l: own_phi8 for l in layers if l not in self.phi}
        if own_phi8 is not None and last in layers and not shares:
            log.warning("VDIM: method.head_dim=%d differs from the encoder's phi_8 (%d): the loss trains its own phi_8 "
                        "and evaluation reads an untrained one; set encoder.head_dim=%d to evaluate phi_8 o Psi (sec. 4.1)",
                        cfg.head_dim, own_phi8.out_bn.num_features, cfg.head_dim)

    def project(self, feats: Dict[str, torch.Tensor], layer: str, consequent: bool) -> torch.Tensor:
        x = feats[layer]
        if consequent and self.cfg.temporal_difference:
            x = temporal_difference(x)
        phi = self.phi[layer] if layer in self.phi else self.shared_phi[layer]
        return phi(x).flatten(2)  # [B, D, locations]

    def forward(self, views: Sequence[torch.Tensor], labels=None) -> Dict[str, torch.Tensor]:
        f1, f2 = self.encoder(views[0]), self.encoder(views[1])
        out: Dict[str, torch.Tensor] = {}
        total = 0.0
        offset = rank() * views[0].shape[0]
        for j, jp in self.pairs:
            a = self.project(f1, j, consequent=False)  # local anchors ...
            c = gather_with_grad(self.project(f2, jp, consequent=True))  # ... against every process's clips
            term = vdim_nce(a.float(), c.float(), self.cfg.score_clip, self.cfg.score_reg, offset=offset)
            out[f"nce_{j}_{jp}"] = term.detach()
            total = total + term
        out["loss"] = total
        return out
