"""What the four rho-methods share (Feichtenhofer et al. 2021, sec. 3): rho clips per video
through one backbone and an MLP projector. Each method's own keys are in its own ``Config``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import torch
from omegaconf import MISSING
from torch import nn

from benchmark.config import RhoClipConfig
from benchmark.data.samplers import RhoClips
from methods.base import Method, MethodConfig, with_shuffled_batch
from methods.heads import MLPHead


@dataclass
class RhoConfig(MethodConfig):
    """The keys every rho-method reads: its clips and its projector."""
    clips: RhoClipConfig = field(default_factory=RhoClipConfig)
    mlp_layers: int = MISSING
    hidden_dim: int = MISSING
    out_dim: int = MISSING
    mlp_bn: bool = MISSING


TARGET_BATCHES = ("together", "per_clip")


@dataclass
class MomentumTargetConfig(RhoConfig):
    """The keys of a rho-method with a momentum target (MoCo, BYOL)."""
    momentum: float = MISSING  # the target's base momentum, annealed to 1 by cosine
    # together: all rho clips through the target as one batch (one set of BN statistics);
    # per_clip: clip by clip, as SlowFast's compute_key_feat under CONTRASTIVE.SEQUENTIAL (its
    # MoCo and BYOL configs), which batches the clips only when there is one
    target_batches: str = "together"


class RhoMethod(Method):
    Config = RhoConfig

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        return RhoClips.of(cfg.clips)

    def __init__(self, encoder: nn.Module, cfg, num_classes: int | None = None):
        if getattr(cfg, "target_batches", TARGET_BATCHES[0]) not in TARGET_BATCHES:
            from benchmark.errors import unknown_choice
            raise unknown_choice("method.target_batches", cfg.target_batches, TARGET_BATCHES)
        super().__init__(encoder, cfg, num_classes)
        self.projector = MLPHead(encoder.global_dim, cfg.hidden_dim, cfg.out_dim, cfg.mlp_layers, cfg.mlp_bn)

    def embed(self, views: Sequence[torch.Tensor], encoder=None, projector=None) -> List[torch.Tensor]:
        """Projector outputs of every clip.

        The online network sees each clip as its own batch, as the reference does (SlowFast's
        ``ContrastiveModel`` runs the backbone once per clip), so batch-norm statistics are
        per clip. Per-clip batches are also faster on CPU: oneDNN's 3-D convolutions lose more to
        a doubled batch than a second call costs (``python -m benchmark perf``)."""
        encoder, projector = encoder or self.encoder, projector or self.projector
        return [projector(encoder(v)["global"]).float() for v in views]

    def target_embed(self, views: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The momentum target's projections of every clip, batched as ``method.target_batches``,
        under MoCo's shuffling BN across processes where ``method.shuffle_bn`` is set."""
        def keys(x):
            return self.target_projector(self.target_encoder(x)["global"]).float()
        if getattr(self.cfg, "shuffle_bn", False):
            plain = keys
            keys = lambda x: with_shuffled_batch(plain, x)  # noqa: E731
        if self.cfg.target_batches == "together":
            return list(keys(torch.cat(list(views))).split(views[0].shape[0]))
        return [keys(v) for v in views]
