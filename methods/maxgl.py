"""Max-GL: global and multi-region local mutual information between clips of one video
("Mutual information guided 3D ResNet for self-supervised video representation learning";
only its description is available, ``shared/papers/003_*``: no code, no full text).

From the description:

* **Global-MI**: MI between the global features of two clips of one video at different times;
  clips of the other videos are the negatives.
* **Multi-region Local-MI**: the average, over several regions of the clip, of the MI between a
  global feature and the local patches (feature-map locations) of that region; it keeps the
  network from settling on the background that a video's clips share.
* Both maximised jointly, on a 3-D ResNet.

Inferred here, each an option (default in brackets):

* ``estimator`` [infonce]: the MI lower bound, :func:`methods.losses.infonce_mi_loss` (as VDIM)
  or :func:`methods.losses.jsd_mi_loss` (Deep InfoMax's Jensen-Shannon estimator);
* ``regions`` [[1, 2, 2]]: the grid (time, height, width) cut over ``local_map``; each region's
  MI is estimated with the same region of the other videos' clips as negatives;
* ``local_pairing`` [same]: the global feature that meets a clip's patches: its own clip's
  (as DIM) or the other clip's (``cross``, as VDIM's cross-view terms);
* ``terms`` [[global, local]]: which of the two objectives are on (the description's ablation
  compares global only, local only and both: ``experiment=maxgl_ablation``), and
  ``global_weight`` and ``local_weight`` [1, 1];
* ``local_map`` [layer3]: the encoder's map whose locations are the patches;
* heads: residual MLPs as VDIM's phi_j (:class:`methods.heads.LocalMLP`, 1x1x1 convolutions),
  one for the global features and one for the patches, to ``embed_dim`` [512];
* clips: two clips of one video at random times, the rho-study's sampler (``clips.rho=2``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch
from omegaconf import MISSING

from benchmark.config import RhoClipConfig
from benchmark.data.samplers import RhoClips
from benchmark.errors import UserError, unknown_choice
from methods.base import Method, MethodConfig, feature_shapes, register_method
from methods.heads import LocalMLP
from methods.losses import MI_ESTIMATORS

LOCAL_PAIRINGS = ("same", "cross")
TERMS = ("global", "local")


@dataclass
class MaxGLConfig(MethodConfig):
    clips: RhoClipConfig = field(default_factory=RhoClipConfig)
    terms: List[str] = MISSING  # global, local or both
    estimator: str = MISSING  # infonce | jsd
    regions: List[int] = MISSING  # grid over the local map: [time, height, width]
    local_pairing: str = MISSING  # same | cross
    global_weight: float = MISSING
    local_weight: float = MISSING
    local_map: str = MISSING
    embed_dim: int = MISSING


def region_patches(local: torch.Tensor, regions) -> List[torch.Tensor]:
    """``local [B, D, T, H, W]`` cut into a ``regions`` (t, h, w) grid: each region's locations as
    ``[B, P, D]`` (sizes as ``torch.tensor_split``: regions differ by at most one location a side)."""
    out = []
    for a in torch.tensor_split(local, regions[0], dim=2):
        for b in torch.tensor_split(a, regions[1], dim=3):
            for c in torch.tensor_split(b, regions[2], dim=4):
                out.append(c.flatten(2).transpose(1, 2))
    return out


@register_method
class MaxGL(Method):
    name = "maxgl"
    Config = MaxGLConfig
    default_encoder = "r3d_18"  # the description's 3-D ResNet

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        if cfg.clips.rho != 2:
            raise UserError(f"bad method.clips.rho {cfg.clips.rho}: Max-GL pairs two clips of a video; set 2")
        return RhoClips.of(cfg.clips)

    def __init__(self, encoder, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        if cfg.estimator not in MI_ESTIMATORS:
            raise unknown_choice("method.estimator", cfg.estimator, MI_ESTIMATORS)
        if cfg.local_pairing not in LOCAL_PAIRINGS:
            raise unknown_choice("method.local_pairing", cfg.local_pairing, LOCAL_PAIRINGS)
        if not cfg.terms or any(t not in TERMS for t in cfg.terms):
            raise UserError(f"bad method.terms {list(cfg.terms)}: one or both of {', '.join(TERMS)}")
        shapes = feature_shapes(encoder)
        maps = [k for k, v in shapes.items() if len(v) == 5]
        if cfg.local_map not in maps:
            raise unknown_choice("method.local_map", cfg.local_map, maps)
        size = shapes[cfg.local_map][2:]
        if len(cfg.regions) != 3 or any(r < 1 or r > s for r, s in zip(cfg.regions, size)):
            raise UserError(f"bad method.regions {list(cfg.regions)}: three counts (time, height, width), each "
                            f"from 1 to the {cfg.local_map} map's size {list(size)}")
        self.global_head = LocalMLP(encoder.global_dim, cfg.embed_dim)
        self.local_head = LocalMLP(shapes[cfg.local_map][1], cfg.embed_dim)
        self.mi = MI_ESTIMATORS[cfg.estimator]

    def features(self, clip: torch.Tensor):
        out = self.encoder(clip)
        g = self.global_head(out["global"][:, :, None, None, None]).flatten(1)
        return g.float(), self.local_head(out[self.cfg.local_map]).float()

    def forward(self, views, labels=None):
        (g1, l1), (g2, l2) = (self.features(v) for v in views)
        c = self.cfg
        out, loss = {}, 0.0
        if "global" in c.terms:
            global_mi = (self.mi(g1, g2[:, None]) + self.mi(g2, g1[:, None])) / 2
            loss, out["global_mi_loss"] = loss + c.global_weight * global_mi, global_mi.detach()
        if "local" in c.terms:
            partner = {"same": (g1, g2), "cross": (g2, g1)}[c.local_pairing]
            local_mi = torch.stack([self.mi(g, r) for g, local in zip(partner, (l1, l2))
                                    for r in region_patches(local, c.regions)]).mean()
            loss, out["local_mi_loss"] = loss + c.local_weight * local_mi, local_mi.detach()
        return {"loss": loss, **out}
