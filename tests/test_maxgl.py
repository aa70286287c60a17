"""Max-GL: its two MI estimators against independent NumPy references, the 3-D ResNet-18 against
torchvision's documented size, and the method's regions, pairings and weights."""
import numpy as np
import pytest
import torch

from conftest import train_on_fixed_batch

from encoders import build_encoder
from methods.losses import infonce_mi_loss, jsd_mi_loss


def _softplus(x):
    return np.log1p(np.exp(-abs(x))) + max(x, 0.0)


def numpy_infonce(g, local):
    """Loop over (video i, position p): positive g_i . l_ip, negatives g_i . l_jq for j != i, every q
    (scores over sqrt(D))."""
    b, p, d = local.shape
    g = g / np.sqrt(d)
    out = []
    for i in range(b):
        for q in range(p):
            pos = g[i] @ local[i, q]
            negs = [g[i] @ local[j, r] for j in range(b) if j != i for r in range(p)]
            z = np.array([pos, *negs])
            m = z.max()
            out.append(m + np.log(np.exp(z - m).sum()) - pos)
    return np.mean(out)


def numpy_jsd(g, local):
    b, p, d = local.shape
    g = g / np.sqrt(d)
    pos = [_softplus(-(g[i] @ local[i, q])) for i in range(b) for q in range(p)]
    neg = [_softplus(g[i] @ local[j, q]) for i in range(b) for j in range(b) if j != i for q in range(p)]
    return np.mean(pos) + np.mean(neg)


@pytest.mark.parametrize("b,p,d", [(2, 1, 3), (4, 5, 8), (6, 9, 16)])
def test_mi_estimators_match_numpy_references(b, p, d):
    rng = np.random.default_rng(b * p * d)
    g, local = rng.normal(size=(b, d)), rng.normal(size=(b, p, d))
    tg, tl = torch.tensor(g), torch.tensor(local)
    assert infonce_mi_loss(tg, tl).item() == pytest.approx(numpy_infonce(g, local), rel=1e-5)
    assert jsd_mi_loss(tg, tl).item() == pytest.approx(numpy_jsd(g, local), rel=1e-5)


def test_mi_estimators_order_agreeing_random_and_opposed_pairs():
    """Global features one-hot (orthogonal across videos): locals that copy their own video's
    global score lower than random locals, and those lower than locals opposed to it."""
    g = 4 * torch.eye(8, 16)  # scores over sqrt(16): +-5 and 0
    agree, opposed = 5 * g[:, None, :].expand(-1, 4, -1), -5 * g[:, None, :].expand(-1, 4, -1)
    random = torch.randn(8, 4, 16, generator=torch.Generator().manual_seed(0))
    for est in (infonce_mi_loss, jsd_mi_loss):
        assert est(g, agree) < est(g, random) < est(g, opposed)


def test_r3d_18_has_torchvisions_size_and_named_maps():
    """torchvision documents r3d_18 at 33,371,472 parameters with its 400-class classifier (512 x 400 + 400)."""
    enc = build_encoder("r3d_18")
    assert sum(p.numel() for p in enc.parameters()) + 512 * 400 + 400 == 33_371_472
    with torch.no_grad():
        out = enc.eval()(torch.zeros(1, 3, 16, 112, 112))
    assert out["layer3"].shape == (1, 256, 4, 14, 14) and out["layer4"].shape == (1, 512, 2, 7, 7)
    assert out["global"].shape == (1, 512)


def test_regions_cut_the_map_into_a_grid_of_its_locations():
    from methods.maxgl import region_patches
    local = torch.arange(2 * 3 * 2 * 4 * 5, dtype=torch.float).view(2, 3, 2, 4, 5)  # [B, D, T, H, W]
    parts = region_patches(local, [1, 2, 2])
    assert [p.shape for p in parts] == [(2, 2 * 2 * 3, 3), (2, 2 * 2 * 2, 3), (2, 2 * 2 * 3, 3), (2, 2 * 2 * 2, 3)]
    # every location once, each in the quadrant it lies in
    together = torch.cat(parts, 1)
    assert sorted(together[0, :, 0].tolist()) == sorted(local[0, 0].flatten().tolist())
    top_left = local[0, 0, :, :2, :3].flatten()
    assert sorted(parts[0][0, :, 0].tolist()) == sorted(top_left.tolist())


def small_maxgl(**kw):
    from methods import build_method
    torch.manual_seed(0)
    return build_method("maxgl", build_encoder("r3d_18", frames=8, size=32), **kw)


@pytest.mark.parametrize("overrides", [{}, {"estimator": "jsd", "local_pairing": "cross", "local_weight": 0.5},
                                       {"terms": ["global"]}, {"terms": ["local"]}])
def test_maxgl_loss_is_the_weighted_sum_and_learns_a_fixed_batch(overrides):
    m = small_maxgl(**overrides)
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(4, 3, 8, 32, 32, generator=g) for _ in range(2)]
    first, out = train_on_fixed_batch(m, views, 6)
    c = m.cfg
    assert set(out) == {"loss", *(f"{t}_mi_loss" for t in c.terms)}
    want = sum(getattr(c, f"{t}_weight") * out[f"{t}_mi_loss"] for t in c.terms)
    assert out["loss"].item() == pytest.approx(float(want), rel=1e-5) and out["loss"].item() < first


@pytest.mark.parametrize("overrides,match", [({"estimator": "nwj"}, "method.estimator"),
                                             ({"local_pairing": "both"}, "method.local_pairing"),
                                             ({"local_map": "layer9"}, "method.local_map"),
                                             ({"regions": [1, 5, 5]}, "method.regions"),
                                             ({"terms": []}, "method.terms"), ({"terms": ["locals"]}, "method.terms")])
def test_maxgl_bad_options_fail_in_one_line(overrides, match):
    from benchmark.errors import UserError
    with pytest.raises(UserError, match=match):
        small_maxgl(**overrides)
