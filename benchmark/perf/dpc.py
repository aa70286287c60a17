"""The dpc section: DPC's training step as the trainer runs it against the official code's step
(TengdaHan/DPC: ``dpc/model_3d.py`` ``DPC_RNN.forward`` and ``dpc/main.py``'s loss), on the same
2D-3D ResNet-18, input and optimiser, timed in turns.

The official step is not installable, so :class:`OfficialDPCStep` computes it as that code does,
op for op: fp32, contiguous layout, eager; every block through the backbone, ReLU and a
time average, the ConvGRU over the first N - P blocks and P predictions fed back, the
``[B P HW, B P HW]`` score as one matmul viewed six-dimensional, the target read off the cached
int8 mask (``mask == 1``, flattened, ``argmax``) every step, cross-entropy, top-1/3/5 accuracy,
Adam (lr 1e-3, weight decay 1e-5). Ours is :class:`methods.dpc.DPC` with the trainer's
``channels_last`` and ``compile``, in fp32 and bf16.
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from benchmark.perf.timing import against_target, round_rates_in_turns, step_fn

TARGET_VS_OFFICIAL = 1.5  # target: our step at least 1.5x the official code's


class OfficialDPCStep(torch.nn.Module):
    """DPC_RNN's forward and ``dpc/main.py``'s loss as the official code computes them, on ``encoder``
    (an ``r2d3d``, whose ``layer4`` is the official backbone's output) and the modules of ``dpc``
    (its ConvGRU cell and predictor, shared so both steps have the same weights)."""

    def __init__(self, encoder, dpc, pred_steps: int = 3):
        super().__init__()
        self.encoder, self.cell, self.predictor, self.pred_steps = encoder, dpc.aggregator.cell, dpc.predictor, pred_steps
        self.mask = None

    def gru(self, x, h):
        return F.dropout(self.cell(x, h), 0.1, self.training)

    def official_mask(self, b: int, p: int, sq: int, device) -> torch.Tensor:
        """The int8 mask the official forward builds once: 1 at the positive, other codes elsewhere."""
        mask = torch.zeros((b, p, sq, b, p, sq), dtype=torch.int8, device=device)
        mask[torch.arange(b), :, :, torch.arange(b), :, :] = -3
        for k in range(b):
            mask[k, :, torch.arange(sq), k, :, torch.arange(sq)] = -1
        tmp = mask.permute(0, 2, 1, 3, 5, 4).contiguous().view(b * sq, p, b * sq, p)
        for j in range(b * sq):
            tmp[j, torch.arange(p), j, torch.arange(p)] = 1
        return tmp.view(b, sq, p, b, sq, p).permute(0, 2, 1, 3, 5, 4)

    def forward(self, blocks):  # [B, N, C, SL, H, W]
        b, n = blocks.shape[:2]
        p = self.pred_steps
        f = self.encoder(blocks.reshape(b * n, *blocks.shape[2:]))["layer4"]
        f = F.avg_pool3d(f, (f.shape[2], 1, 1), stride=(1, 1, 1))
        d, s = f.shape[1], f.shape[-1]
        target_all = f.view(b, n, d, s, s)
        seen = F.relu(target_all)
        target = target_all[:, n - p:].contiguous()
        hidden = None
        for i in range(n - p):
            hidden = self.gru(seen[:, i].contiguous(), hidden)
        preds = []
        for _ in range(p):
            pt = self.predictor(hidden)
            preds.append(pt)
            hidden = self.gru(F.relu(pt), hidden)
        pred = torch.stack(preds, 1).permute(0, 1, 3, 4, 2).contiguous().view(b * p * s * s, d)
        target = target.permute(0, 1, 3, 4, 2).contiguous().view(b * p * s * s, d).transpose(0, 1)
        score = torch.matmul(pred, target).view(b, p, s * s, b, p, s * s)
        if self.mask is None:
            self.mask = self.official_mask(b, p, s * s, score.device)
        flat = score.view(b * p * s * s, b * p * s * s)
        labels = (self.mask == 1).reshape(b * p * s * s, b * p * s * s).to(int).argmax(dim=1)  # a contiguous copy, as the torch of its day gave it
        loss = F.cross_entropy(flat, labels)
        with torch.no_grad():  # calc_topk_accuracy(score, target, (1, 3, 5)), as main.py logs it every step
            top = flat.topk(5, 1).indices.eq(labels[:, None])
            _ = [top[:, :k].any(1).float().mean() for k in (1, 3, 5)]
        return loss


def dpc_input(cfg, device) -> torch.Tensor:
    """The official layout ``[B, 8, 3, 5, S, S]`` of ``cfg.dpc_batch`` random samples."""
    return torch.randn(cfg.dpc_batch, 8, 3, 5, cfg.dpc_size, cfg.dpc_size, device=device)


def adam(params):
    return torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5)


def built_pair(device):
    """Our DPC (R18, batch statistics as DPC pretrains) and the official step on a copy of its weights."""
    import copy

    from encoders import build_encoder
    from methods import build_method
    torch.manual_seed(0)
    ours = build_method("dpc", build_encoder("r2d3d_18"), frame_stride=1).to(device).train()
    twin = copy.deepcopy(ours)
    return ours, OfficialDPCStep(twin.encoder, twin).train()


def section_dpc(cfg, rows, device):
    """Ours (the trainer's levers, fp32 and bf16) and the official step (fp32, contiguous)."""
    from benchmark.bf16_conv_guard import guard_where_needed
    from benchmark.trainer import apply_speed_levers, in_layout
    t = cfg.trainer
    x = dpc_input(cfg, device)
    _, official = built_pair(device)
    steps = {"official DPC_RNN step (fp32, contiguous)": (
        step_fn(lambda: official(x), list(official.parameters()), device, "fp32", make_optimizer=adam), x.shape[0])}
    for precision in ("fp32", "bf16"):
        ours, _ = built_pair(device)
        apply_speed_levers(ours, t.channels_last, t.compile)
        b, n, c, sl, h, w = x.shape  # as the harness's sampler gives it: one clip of the N blocks back to back
        xin = in_layout([x.transpose(1, 2).reshape(b, c, n * sl, h, w)], t.channels_last)
        guard_where_needed(ours, lambda probe, v=xin: probe(v), device, precision)  # as the trainer's first step
        steps[f"ours dpc ({precision})"] = (
            step_fn(lambda m=ours, v=xin: m(v)["loss"], list(ours.parameters()), device, precision, make_optimizer=adam),
            x.shape[0])
    per_round = round_rates_in_turns(steps, cfg.repeats, warmup=1)
    rates = {k: statistics.median(v) for k, v in per_round.items()}
    ref = "official DPC_RNN step (fp32, contiguous)"
    shape = f"{cfg.dpc_batch} x 8 blocks x 5 x {cfg.dpc_size}^2"
    for name, rate in rates.items():
        rows.append({"section": "dpc", "what": name, "input": shape, "clips_per_s": rate})
    for name in rates:
        if name != ref:
            same_round = [a / b for a, b in zip(per_round[name], per_round[ref])]
            rows.append({"section": "dpc", "what": f"{name} / official", "input": shape,
                         **against_target(rates[name] / rates[ref], TARGET_VS_OFFICIAL),
                         "round_min": min(same_round), "round_max": max(same_round)})
