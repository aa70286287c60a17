"""Every loss against an independent NumPy reference, over batch sizes, dimensions, temperatures."""
import numpy as np
import pytest
import torch

from methods.losses import byol_loss, info_nce, nt_xent, sinkhorn, swav_loss, swav_view_agreement, vdim_nce


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _lse(x):
    m = x.max()
    return m + np.log(np.exp(x - m).sum())


@pytest.mark.parametrize("n,d,t", [(2, 4, 0.1), (5, 16, 0.5), (8, 32, 1.0)])
def test_nt_xent(n, d, t):
    rng = np.random.default_rng(n * d)
    z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    z = _norm(np.concatenate([z1, z2]))
    losses = []
    for i in range(2 * n):  # anchor i: positive i +- n, negatives: the other 2n - 2
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        logits = np.array([z[i] @ z[k] / t for k in others])
        losses.append(-(z[i] @ z[j] / t) + _lse(logits))
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), t).item()
    assert got == pytest.approx(np.mean(losses), rel=1e-6)


@pytest.mark.parametrize("n,d,k,t", [(3, 8, 5, 0.1), (6, 16, 20, 0.2)])
def test_info_nce(n, d, k, t):
    rng = np.random.default_rng(k)
    q, key, queue = _norm(rng.normal(size=(n, d))), _norm(rng.normal(size=(n, d))), _norm(rng.normal(size=(k, d)))
    ref = np.mean([-(q[i] @ key[i] / t) + _lse(np.concatenate([[q[i] @ key[i]], queue @ q[i]]) / t) for i in range(n)])
    assert info_nce(torch.tensor(q), torch.tensor(key), torch.tensor(queue), t).item() == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("n,d", [(1, 3), (7, 64)])
def test_byol(n, d):
    rng = np.random.default_rng(d)
    p, z = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    ref = np.mean([2 - 2 * (p[i] @ z[i]) / np.linalg.norm(p[i]) / np.linalg.norm(z[i]) for i in range(n)])
    assert byol_loss(torch.tensor(p), torch.tensor(z)).item() == pytest.approx(ref, rel=1e-6)


def test_sinkhorn_codes_doubly_stochastic():
    scores = torch.randn(16, 8)
    q = sinkhorn(scores, eps=0.5, iters=50)
    assert torch.allclose(q.sum(1), torch.ones(16), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((8,), 2.0), atol=1e-3)  # B / K per prototype


def _np_sinkhorn(s, eps, iters):
    q = np.exp(s / eps).T
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q /= q.sum(1, keepdims=True) * k
        q /= q.sum(0, keepdims=True) * b
    return (q * b).T


@pytest.mark.parametrize("b,k,t", [(4, 6, 0.1), (10, 3, 0.5)])
def test_swav_loss(b, k, t):
    rng = np.random.default_rng(b)
    scores = [rng.normal(size=(b, k)) * 0.3 for _ in range(3)]
    terms = []
    for s in (0, 1):
        q = _np_sinkhorn(scores[s], 0.05, 3)
        for u in range(3):
            if u != s:
                logp = scores[u] / t - np.array([_lse(r) for r in scores[u] / t])[:, None]
                terms.append(-(q * logp).sum(1).mean())
    got = swav_loss([torch.tensor(x) for x in scores], t, 0.05, 3).item()
    assert got == pytest.approx(np.mean(terms), rel=1e-5)


def _vdim_nce_reference(a, c, clip, reg, anchors):
    """Eq. 3-4 written out loop by loop for the anchor clips ``anchors`` against all of ``c``."""
    d = a.shape[1]
    raw = np.einsum("xdi,ydj->xiyj", a, c) / np.sqrt(d)  # [b, na, bc, nc]
    s = clip * np.tanh(raw / clip)
    losses = []
    for x in anchors:
        for i in range(a.shape[2]):
            neg = np.concatenate([s[x, i, y] for y in range(c.shape[0]) if y != x])
            for j in range(c.shape[2]):
                losses.append(-s[x, i, x, j] + _lse(np.concatenate([[s[x, i, x, j]], neg])))
    return np.mean(losses) + reg * np.mean(raw[list(anchors)] ** 2)


@pytest.mark.parametrize("b,d,na,nc,chunk", [(2, 4, 3, 1, 4096), (3, 8, 5, 4, 4096), (4, 6, 7, 2, 3)])
def test_vdim_nce(b, d, na, nc, chunk):
    rng = np.random.default_rng(b * na)
    a, c = rng.normal(size=(b, d, na)) * 3, rng.normal(size=(b, d, nc)) * 3
    clip, reg = 20.0, 0.05
    ref = _vdim_nce_reference(a, c, clip, reg, range(b))
    at, ct = torch.tensor(a, requires_grad=True), torch.tensor(c)
    got = vdim_nce(at, ct, clip, reg, chunk=chunk)
    assert got.item() == pytest.approx(ref, rel=1e-6)
    got.backward()
    assert torch.isfinite(at.grad).all()


def _vdim_nce_dense(a, c, clip, reg):
    """Eq. 3-4 on the full score tensor at once, in float64: every positive against a
    log-sum-exp over itself and all locations of the other clips (no chunks, no masks)."""
    b, d, na = a.shape
    raw = torch.einsum("xdi,ydj->xiyj", a, c) / d ** 0.5  # [b, na, b, nc]
    s = clip * torch.tanh(raw / clip)
    terms = []
    for x in range(b):
        neg = torch.cat([s[x, :, y] for y in range(b) if y != x], dim=1)  # [na, (b - 1) nc]
        pos = s[x, :, x]  # [na, nc]
        lse = torch.logsumexp(torch.cat([pos[..., None], neg[:, None].expand(-1, pos.shape[1], -1)], 2), 2)
        terms.append(lse - pos)
    return torch.stack(terms).mean() + reg * (raw ** 2).mean()


@pytest.mark.parametrize("b,na,nc,chunk", [(3, 5, 4, 4096), (4, 7, 2, 3), (5, 1, 6, 7)])
def test_vdim_nce_gradients_match_the_dense_formula(b, na, nc, chunk):
    """The chunked, checkpointed loss (positives gathered from each chunk's score block, the
    scale folded into the anchors) has the gradients of the dense formula, for anchors and
    consequents."""
    g = torch.Generator().manual_seed(b * 10 + nc)
    a = (torch.randn(b, 6, na, generator=g, dtype=torch.float64) * 3).requires_grad_()
    c = (torch.randn(b, 6, nc, generator=g, dtype=torch.float64) * 3).requires_grad_()
    want = torch.autograd.grad(_vdim_nce_dense(a, c, 20.0, 0.05), (a, c))
    got = torch.autograd.grad(vdim_nce(a, c, 20.0, 0.05, chunk=chunk), (a, c))
    for w, h in zip(want, got):
        torch.testing.assert_close(h, w, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("offset,local", [(0, 2), (2, 2), (3, 3)])
def test_vdim_nce_local_anchors_against_gathered_consequents(offset, local):
    """One process's share under DDP: its anchors ``a[offset:offset+local]`` against all clips."""
    rng = np.random.default_rng(offset + 7)
    a, c = rng.normal(size=(6, 5, 4)) * 3, rng.normal(size=(6, 5, 3)) * 3
    ref = _vdim_nce_reference(a, c, 20.0, 0.05, range(offset, offset + local))
    got = vdim_nce(torch.tensor(a[offset:offset + local]), torch.tensor(c), 20.0, 0.05, chunk=5, offset=offset)
    assert got.item() == pytest.approx(ref, rel=1e-6)


def test_swav_loss_with_queue_takes_the_batch_rows_of_codes_over_queue_and_batch():
    rng = np.random.default_rng(7)
    b, k, length = 4, 6, 10
    scores = [rng.normal(size=(b, k)) * 0.3 for _ in range(2)]
    queued = [rng.normal(size=(length, k)) * 0.3 for _ in range(2)]
    terms = []
    for s in (0, 1):
        q = _np_sinkhorn(np.concatenate([queued[s], scores[s]]), 0.05, 3)[-b:]
        u = 1 - s
        logp = scores[u] / 0.1 - np.array([_lse(r) for r in scores[u] / 0.1])[:, None]
        terms.append(-(q * logp).sum(1).mean())
    got = swav_loss([torch.tensor(x) for x in scores], 0.1, 0.05, 3, queued=[torch.tensor(x) for x in queued]).item()
    assert got == pytest.approx(np.mean(terms), rel=1e-5)
    assert got != pytest.approx(swav_loss([torch.tensor(x) for x in scores], 0.1, 0.05, 3).item(), rel=1e-3)


def _centred(s, over_batch=True):
    """Scores centred over the prototypes and, unless ``over_batch`` is False, over the batch."""
    s = s - s.mean(axis=1, keepdims=True)
    return s - s.mean(axis=0, keepdims=True) if over_batch else s


def test_swav_view_agreement_matches_numpy_and_its_limits():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 10)), rng.normal(size=(6, 10))
    ca, cb = _centred(a), _centred(b)
    want = np.mean([ca[i] @ cb[i] / np.linalg.norm(ca[i]) / np.linalg.norm(cb[i]) for i in range(6)])
    assert swav_view_agreement(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(want, rel=1e-5)
    # the same clip twice agrees fully; a shift common to the batch or to a clip's scores changes nothing
    assert swav_view_agreement(torch.tensor(a), torch.tensor(a)).item() == pytest.approx(1.0, abs=1e-6)
    shifted = a + rng.normal(size=(1, 10)) + rng.normal(size=(6, 1))
    assert swav_view_agreement(torch.tensor(a), torch.tensor(shifted)).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("shared", [0.0, 0.3, 0.9])
def test_swav_loss_near_the_uniform_solution_follows_the_second_order_expansion(shared):
    """The expansion that docs/synthetic.md and ``swav_view_agreement`` rely on: around the collapsed point
    (every prototype equally far from the clips) the mean swapped loss is
    ``log K + mean_i [|y_s|^2 + |y_t|^2 - 4 (tau/eps) x_s . x_t] / (4 K tau^2)`` (x centred over
    batch and prototypes, y over prototypes), so the loss falls below log K only when the two
    clips agree by more than eps / (2 tau) = 0.25."""
    rng = np.random.default_rng(0)
    b, k, tau, eps, d = 8, 40, 0.1, 0.05, 1e-3
    common = np.full((1, k), 0.2)
    own = rng.normal(size=(b, k))
    s0 = common + d * own
    s1 = common + d * (shared * own + np.sqrt(1 - shared ** 2) * rng.normal(size=(b, k)))
    got = swav_loss([torch.tensor(s0), torch.tensor(s1)], tau, eps, 3).item() - np.log(k)
    x0, x1, y0, y1 = _centred(s0), _centred(s1), _centred(s0, False), _centred(s1, False)
    want = np.mean((y0 ** 2).sum(1) + (y1 ** 2).sum(1) - 4 * tau / eps * (x0 * x1).sum(1)) / (4 * k * tau ** 2)
    assert got == pytest.approx(want, rel=0.05, abs=1e-7)
    agreement = swav_view_agreement(torch.tensor(s0), torch.tensor(s1)).item()
    assert (got < 0) == (agreement > eps / (2 * tau))
