"""Dense Predictive Coding (Han, Xie and Zisserman 2019), as its official code (TengdaHan/DPC,
``dpc/model_3d.py`` ``DPC_RNN``, ``backbone/convrnn.py``, ``dpc/main.py``).

A sample is ``blocks`` (N = 8) consecutive blocks of ``encoder.frames`` (5) frames at the data's
frame stride (3 on UCF-101, 5 on Kinetics). Each block goes through the backbone; its last map
(``feature_map``, ``[D, T', H, W]``) is averaged over its remaining time. A ConvGRU
(:class:`ConvGRU`: kernel 1, one layer, hidden D, dropout 0.1 on the hidden state at every
step, orthogonal weights) reads the ReLU'd maps of the first N - P blocks; a predictor
(1x1 conv, ReLU, 1x1 conv) then predicts the last P (3) blocks one step at a time, each
prediction ReLU'd and fed back through the GRU. The targets are the last P blocks' maps before
the ReLU. The loss is :func:`methods.losses.dpc_nce`, every (video, step, position) against
every other; ``top1`` is how often the positive scores highest.

Batch norm: DPC pretrains with ``track_running_stats=False`` (every BN normalises by its batch,
also when the frozen encoder is evaluated); ``track_running_stats: true`` keeps running
statistics, which the official code's author reports to work better. An encoder pretrained
without them gets them back before it is evaluated (:mod:`evaluation.batch_norm`: population
statistics over training clips for the frozen protocols; learnt by fine-tuning, as DPC's own
fine-tuning builds its backbone with running statistics).

Layout: ``forward(views)`` takes ``views[0]`` as ``[B, N, C, SL, H, W]`` (the official layout), or
as one clip ``[B, C, N SL, H, W]`` of the N blocks back to back, as the harness's sampler gives
it (one ``RhoClips`` clip of N x SL frames: one crop and flip for the whole sample, as the
official code crops and flips consistently). Colour jitter and grey are drawn per frame, grey as
one random channel copied (``augment.color_per=frame``, ``augment.grayscale=channel``), as the
official ``utils/augmentation.py`` does; departure: the harness jitters, then greys, where the
official code greys first (saturation and hue leave a grey frame grey, so only a greyed frame's
brightness and contrast are drawn differently).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from benchmark.data.samplers import RhoClips
from benchmark.errors import UserError
from methods.base import Method, MethodConfig, feature_shapes, gather_with_grad, rank, register_method
from methods.losses import dpc_logits


@dataclass
class DPCConfig(MethodConfig):
    blocks: int = MISSING  # N: blocks per sample
    pred_steps: int = MISSING  # P: blocks predicted
    frame_stride: int = MISSING  # frames between a block's frames (and between blocks)
    feature_map: str = MISSING  # the encoder's map that is aggregated and predicted
    gru_dropout: float = MISSING
    track_running_stats: bool = MISSING  # False: BN by batch statistics only (DPC)


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell (update, reset and candidate gates as convolutions over the input
    and hidden maps concatenated); the hidden state starts at zero."""

    def __init__(self, channels: int, hidden: int, kernel: int = 1):
        super().__init__()
        pad = kernel // 2
        self.hidden = hidden
        self.update_gate = nn.Conv2d(channels + hidden, hidden, kernel, padding=pad)
        self.reset_gate = nn.Conv2d(channels + hidden, hidden, kernel, padding=pad)
        self.out_gate = nn.Conv2d(channels + hidden, hidden, kernel, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
        both = torch.cat([x, h], 1)
        update, reset = torch.sigmoid(self.update_gate(both)), torch.sigmoid(self.reset_gate(both))
        candidate = torch.tanh(self.out_gate(torch.cat([x, h * reset], 1)))
        return h * (1 - update) + candidate * update


class ConvGRU(nn.Module):
    """One-layer ConvGRU with dropout on the hidden state after every step, as the official
    ``backbone/convrnn.py`` ``ConvGRU`` (``num_layers=1``, ``dropout=0.1``); orthogonal weights."""

    def __init__(self, channels: int, hidden: int, kernel: int = 1, dropout: float = 0.1):
        super().__init__()
        self.cell = ConvGRUCell(channels, hidden, kernel)
        self.dropout = nn.Dropout(dropout)
        orthogonal_init(self.cell)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        return self.dropout(self.cell(x, h))


def as_blocks(x: torch.Tensor, blocks: int) -> torch.Tensor:
    """``[B, N, C, SL, H, W]`` from the official layout (returned as it is) or from one clip
    ``[B, C, N SL, H, W]`` of the N blocks back to back."""
    if x.dim() == 6:
        return x
    b, c, t, hh, ww = x.shape
    return x.reshape(b, c, blocks, t // blocks, hh, ww).transpose(1, 2)


def block_maps(encoder: nn.Module, x: torch.Tensor, feature_map: str) -> torch.Tensor:
    """Each block of ``x [B, N, C, SL, H, W]`` through ``encoder``; its ``feature_map`` averaged over
    the block's remaining time: ``[B, N, D, H', W']``."""
    b, n = x.shape[:2]
    f = encoder(x.flatten(0, 1))[feature_map].mean(2)
    return f.reshape(b, n, *f.shape[1:])


def orthogonal_init(module: nn.Module) -> None:
    """The official code's initialisation of the aggregator and predictor: weights orthogonal, biases 0."""
    for name, p in module.named_parameters():
        if "bias" in name:
            nn.init.zeros_(p)
        else:
            nn.init.orthogonal_(p)


def use_batch_statistics(encoder: nn.Module) -> None:
    """Every batch norm of ``encoder`` normalises by its batch, in training and evaluation alike
    (``track_running_stats=False``, as DPC's backbone is built)."""
    for m in encoder.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


@register_method
class DPC(Method):
    name = "dpc"
    Config = DPCConfig
    default_encoder = "r2d3d_18"  # the official backbone; `method=dpc` alone runs on it

    @classmethod
    def clip_sampler(cls, cfg, encoder_cfg):
        if not 0 < cfg.pred_steps < cfg.blocks:
            raise UserError(f"bad method.pred_steps {cfg.pred_steps}: must be >= 1 and below method.blocks "
                            f"({cfg.blocks}), so that some blocks are read before any is predicted")
        return RhoClips(1, cfg.blocks * encoder_cfg.frames, cfg.frame_stride)

    def __init__(self, encoder, cfg, num_classes=None):
        super().__init__(encoder, cfg, num_classes)
        if not cfg.track_running_stats:
            use_batch_statistics(encoder)
        shapes = feature_shapes(encoder)
        if cfg.feature_map not in shapes or len(shapes[cfg.feature_map]) != 5:
            from benchmark.errors import unknown_choice
            raise unknown_choice("method.feature_map", cfg.feature_map, [k for k, v in shapes.items() if len(v) == 5])
        d = shapes[cfg.feature_map][1]
        self.aggregator = ConvGRU(d, d, 1, cfg.gru_dropout)
        self.predictor = nn.Sequential(nn.Conv2d(d, d, 1), nn.ReLU(inplace=True), nn.Conv2d(d, d, 1))
        orthogonal_init(self.predictor)

    def forward(self, views, labels=None):
        x = as_blocks(views[0], self.cfg.blocks)
        b, n = x.shape[:2]
        p = self.cfg.pred_steps
        f = block_maps(self.encoder, x, self.cfg.feature_map)  # [B, N, D, H', W'], before the ReLU
        target = f[:, n - p:]
        seen = F.relu(f)
        hidden = None
        for i in range(n - p):
            hidden = self.aggregator(seen[:, i], hidden)
        preds = []
        for _ in range(p):
            pred = self.predictor(hidden)
            preds.append(pred)
            hidden = self.aggregator(F.relu(pred), hidden)
        pred = torch.stack(preds, 1)
        logits, targets = dpc_logits(pred.float(), gather_with_grad(target.float()), offset=rank() * b)
        loss = F.cross_entropy(logits, targets)
        return {"loss": loss, "top1": (logits.argmax(1) == targets).float().mean().detach()}
