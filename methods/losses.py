"""Self-supervised losses as plain functions on tensors, usable alone.

Each is checked in ``tests/test_losses.py`` against an independent NumPy reference over
several batch sizes, dimensions and temperatures.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from methods.base import world_size


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, eq. 1), symmetric over the 2N embeddings.

    Each of the 2N anchors has its pair as positive and the other 2N - 2 embeddings as
    negatives; self-similarity is masked. Mean over the 2N anchors.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020, eq. 1): query against its key (positive) and the queue.

    ``q``, ``k``: ``[N, D]``; ``queue``: ``[K, D]`` of negatives (no gradient). All L2-normalised.
    """
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.t()
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL (Grill et al. 2020, eq. 2): ``2 - 2 cos(p, z)``, mean over the batch; ``z`` is a target."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, eps: float = 0.05, iters: int = 3) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp codes (Caron et al. 2020, sec. 3.1): ``[B, K]`` scores to codes
    whose rows sum to 1 and whose columns share the batch equally. Sums run over all
    processes when torch.distributed is initialised."""
    import torch.distributed as dist

    distributed = world_size() > 1
    q = torch.exp((scores.float() - scores.float().max()) / eps).t()  # [K, B]
    b = q.shape[1] * world_size()
    k = q.shape[0]
    total = q.sum()
    if distributed:
        dist.all_reduce(total)
    q /= total
    for _ in range(iters):
        rows = q.sum(dim=1, keepdim=True)
        if distributed:
            dist.all_reduce(rows)
        q /= rows * k
        q /= q.sum(dim=0, keepdim=True) * b
    return (q * b).t()  # [B, K], rows sum to 1


def swav_loss(scores: Sequence[torch.Tensor], temperature: float = 0.1, eps: float = 0.05, iters: int = 3,
              assign_from: Sequence[int] = (0, 1), queued: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """SwAV swapped prediction (Caron et al. 2020, eq. 1-2) over clips.

    ``scores[v]``: ``[B, K]`` prototype scores of clip ``v``. Codes come from the clips in
    ``assign_from`` and each is predicted from every other clip:
    ``-sum_k q_s log softmax(scores_t / temperature)``, averaged over the (s, t) pairs.
    ``queued[i]``: ``[L, K]`` scores of earlier batches' embeddings for the i-th assigning clip
    (SwAV's queue, sec. 4 / appendix A.1, for batches too small to share out the prototypes):
    Sinkhorn runs over them and the batch, and the batch's codes are its last ``B`` rows.
    """
    terms = []
    for i, s in enumerate(assign_from):
        b = scores[s].shape[0]
        pool = scores[s].detach() if queued is None else torch.cat([queued[i].float(), scores[s].detach().float()])
        q = sinkhorn(pool, eps, iters)[-b:]
        for t in range(len(scores)):
            if t != s:
                terms.append(-(q * F.log_softmax(scores[t] / temperature, dim=1)).sum(dim=1).mean())
    return torch.stack(terms).mean()


@torch.no_grad()
def swav_view_agreement(scores_a: torch.Tensor, scores_b: torch.Tensor) -> torch.Tensor:
    """How alike two clips of each video look to the prototypes: the cosine between their
    ``[B, K]`` scores, each centred over the batch and over the prototypes, averaged over videos.

    To first order around the uniform solution, Sinkhorn's codes are ``(1 + x / eps) / K``
    for these centred scores ``x``, and the two swapped terms of a pair of clips sum to
    ``2 log K + |x|^2 (1 - 2 rho tau / eps) / (K tau^2)`` with ``rho`` this agreement: the
    uniform solution (every code and prediction ``1 / K``, loss ``log K``) attracts the
    training while ``rho < eps / (2 tau)`` (0.25 at SwAV's eps 0.05, tau 0.1). Logged by
    rho-SwAV as a collapse monitor (docs/synthetic.md)."""
    def centred(s):
        s = s.float()
        s = s - s.mean(dim=0, keepdim=True)
        return s - s.mean(dim=1, keepdim=True)
    return F.cosine_similarity(centred(scores_a), centred(scores_b), dim=1).mean()


def _nce_chunk(a_over_clip: torch.Tensor, c_all: torch.Tensor, own: torch.Tensor, nc: int, clip: float):
    """Loss sum and squared raw-score sum for a chunk of anchors (rows of ``a_over_clip``, the
    anchors already scaled by ``1 / (sqrt(D) c)``, so that one matrix product gives ``raw / c``
    for every pair)."""
    raw_over_clip = a_over_clip @ c_all
    s_all = clip * torch.tanh(raw_over_clip)  # [n, B * Nc]: AMDIM's c * tanh(raw / c), every pair
    cols = own[:, None] * nc + torch.arange(nc, device=c_all.device)[None]  # each anchor's own clip's locations
    s_pos = s_all.gather(1, cols)  # [n, Nc]: the positives, read from the same scores
    # negatives: all locations of all *other* clips (eq. 3)
    neg_lse = torch.logsumexp(s_all.scatter(1, cols, float("-inf")), dim=1, keepdim=True) \
        if c_all.shape[1] > nc else torch.full_like(s_pos[:, :1], float("-inf"))
    # -log( e^{s+} / (e^{s+} + sum_neg e^{s-}) ) = softplus(lse_neg - s+)
    return F.softplus(neg_lse - s_pos).sum(), raw_over_clip.square().sum() * clip ** 2


# anchors x consequent locations per chunk: at B=32, 343x343 on CPU 1.3-1.6x faster than 8192;
# 131072 gains only 1.1x for 4x the memory
VDIM_CHUNK = 32768


def vdim_nce(antecedent: torch.Tensor, consequent: torch.Tensor, clip: float = 20.0, reg: float = 0.05,
             chunk: int = VDIM_CHUNK, offset: int = 0) -> torch.Tensor:
    """VDIM's infoNCE over all local-location pairs (paper eq. 3-4) with AMDIM's scores.

    ``antecedent``: ``[B, D, Na]`` (phi_j of view 1 at Na locations); ``consequent``:
    ``[Bc, D, Nc]`` (phi_j' of view 2), ``Bc >= B``; anchor clip b's own consequent is
    ``consequent[offset + b]``. Under torch.distributed each process passes its local
    anchors, the all-gathered consequents and ``offset = rank * B``: every process then
    scores only its own anchors and the mean over processes is the loss of the whole
    batch. For every clip b and location pair (i, i'), the
    score ``s = c * tanh(a_bi . c_bi' / sqrt(D) / c)`` of the positive is contrasted with
    the positive plus every location of every other clip in the batch. Returns the mean
    over the B * Na * Nc positive pairs plus ``reg * mean(raw score^2)`` (AMDIM).

    Anchors are processed in chunks under activation checkpointing, so memory grows with
    ``chunk x Bc`` scores per block: linearly in the number of locations, not with ``(B Na)(B Nc)``.
    """
    b, d, na = antecedent.shape
    bc, nc = consequent.shape[0], consequent.shape[2]
    a = antecedent.permute(0, 2, 1).reshape(b * na, d)
    own = (offset + torch.arange(b, device=a.device)).repeat_interleave(na)
    c_all = consequent.permute(1, 0, 2).reshape(d, bc * nc)
    a_over_clip = a * (1.0 / (math.sqrt(d) * clip))
    rows = max(1, chunk // max(1, nc))
    loss_sum = a.new_zeros(())
    sq_sum = a.new_zeros(())
    for start in range(0, b * na, rows):
        sl = slice(start, start + rows)
        args = (a_over_clip[sl], c_all, own[sl], nc, clip)
        if torch.is_grad_enabled() and a.requires_grad and b * na > rows:
            l, q = checkpoint(_nce_chunk, *args, use_reentrant=False)
        else:
            l, q = _nce_chunk(*args)
        loss_sum, sq_sum = loss_sum + l, sq_sum + q
    return loss_sum / (b * na * nc) + reg * sq_sum / (b * na * bc * nc)


def dpc_logits(pred: torch.Tensor, target: torch.Tensor, offset: int = 0):
    """DPC's dense scores (Han et al. 2019, sec. 3.2; official ``dpc/model_3d.py``): ``pred``
    ``[B, P, D, H, W]`` (this process's predictions) against ``target`` ``[B', P, D, H, W]``
    (every process's targets under torch.distributed, this one's at rows ``offset`` on).

    Each prediction (video, step, position) is scored against every target (video, step,
    position) by a raw dot product over D, no normalisation or temperature. Its positive is the
    target at its own video, step and position; spatial negatives (same video and step, other
    positions), temporal negatives (same video, other steps) and easy negatives (other videos)
    share one softmax. ``(logits [B P H W, B' P H W], labels)``. The official code scored on each
    GPU under DataParallel, so its negatives were capped at one GPU's batch; here they are the
    global batch's."""
    b, p, d, h, w = pred.shape
    rows = pred.permute(0, 1, 3, 4, 2).reshape(b * p * h * w, d)
    cols = target.permute(0, 1, 3, 4, 2).reshape(-1, d)
    labels = torch.arange(rows.shape[0], device=pred.device) + offset * p * h * w
    return rows @ cols.t(), labels


def dpc_nce(pred: torch.Tensor, target: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """DPC's loss: mean cross-entropy of :func:`dpc_logits` (``[B, P, D, H, W]`` each)."""
    logits, labels = dpc_logits(pred, target, offset)
    return F.cross_entropy(logits, labels)


def global_local_scores(g: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Critic scores of Deep InfoMax (Hjelm et al. 2019, sec. 3): the dot product of every global
    feature ``g [B, D]`` with every local feature ``local [B, P, D]`` over sqrt(D), as AMDIM's code
    scales them, so that unit-variance features score about unit variance:
    ``[B (global), B (local), P]``. A global feature against one other global feature is ``P = 1``."""
    return torch.einsum("id,jpd->ijp", g, local) / math.sqrt(g.shape[-1])


def infonce_mi_loss(g: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """InfoNCE between ``g [B, D]`` and ``local [B, P, D]`` (van den Oord et al. 2018; DIM's
    ``infonce`` objective): for video i and position p, the positive is (g_i, local_i,p), the
    negatives are (g_i, local_j,q) for every other video j and every position q; mean over i, p of
    the cross-entropy. The video's own other positions are neither."""
    b, p = local.shape[:2]
    s = global_local_scores(g.float(), local.float())                        # [B, B, P]
    own = torch.eye(b, dtype=torch.bool, device=g.device)
    negatives = s.masked_fill(own[:, :, None], float("-inf")).flatten(1)     # [B, B P]: others' positions
    positives = s[torch.arange(b), torch.arange(b)]                          # [B, P]
    lse = torch.logsumexp(torch.cat([positives[..., None], negatives[:, None, :].expand(b, p, -1)], -1), -1)
    return (lse - positives).mean()


def jsd_mi_loss(g: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """The Jensen-Shannon estimator of Deep InfoMax (Hjelm et al. 2019, eq. 4), negated: mean
    ``softplus(-s)`` over positive pairs (g_i, local_i,p) plus mean ``softplus(s)`` over negative
    pairs (g_i, local_j,q), j != i. Its minimum maximises the JSD lower bound on the MI."""
    b = g.shape[0]
    s = global_local_scores(g.float(), local.float())
    own = torch.eye(b, dtype=torch.bool, device=g.device)[:, :, None].expand_as(s)
    return F.softplus(-s[own]).mean() + F.softplus(s[~own]).mean()


MI_ESTIMATORS = {"infonce": infonce_mi_loss, "jsd": jsd_mi_loss}
