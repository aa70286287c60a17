"""benchmark.optim's optimizers against independent formulas: LARS's two trust ratios (SimCLR's
and SlowFast's), Nesterov momentum, and batch norm's own weight decay."""
import numpy as np
import pytest
import torch
from torch import nn

from benchmark.optim import batch_norm_parameters, build_optimizer


def numpy_lars(w, grads, lr, momentum, wd, eta, trust, nesterov):
    """LARS written out for one weight matrix in float64."""
    w, buf = w.astype(np.float64).copy(), np.zeros_like(w, dtype=np.float64)
    for g in grads:
        g = g.astype(np.float64)
        if trust == "norm_of_sum":
            ratio = eta * np.linalg.norm(w) / np.linalg.norm(g + wd * w)
        else:  # slowfast/models/optimizer.py: trust_coefficient * ||w|| / (||g|| + wd ||w|| + eps)
            ratio = eta * np.linalg.norm(w) / (np.linalg.norm(g) + wd * np.linalg.norm(w) + 1e-8)
        d = (g + wd * w) * ratio
        buf = momentum * buf + d
        w = w - lr * (d + momentum * buf if nesterov else buf)
    return w


@pytest.mark.parametrize("trust", ["norm_of_sum", "sum_of_norms"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_the_formula(trust, nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((6, 5)).astype(np.float32)
    grads = [rng.standard_normal((6, 5)).astype(np.float32) for _ in range(4)]
    p = nn.Parameter(torch.from_numpy(w0.copy()))
    # a large weight decay so that the two trust ratios differ by far more than fp32 rounding
    opt = build_optimizer("lars", [p], lr=0.5, weight_decay=0.3, momentum=0.9, nesterov=nesterov, lars_trust=trust)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    ref = numpy_lars(w0, grads, 0.5, 0.9, 0.3, 0.001, trust, nesterov)
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-5, atol=1e-7)  # 4 fp32 steps of 30 entries


def test_the_two_trust_ratios_differ():
    torch.manual_seed(0)
    finals = []
    for trust in ("norm_of_sum", "sum_of_norms"):
        p = nn.Parameter(torch.ones(4, 4))
        opt = build_optimizer("lars", [p], lr=1.0, weight_decay=0.5, lars_trust=trust)
        p.grad = torch.full((4, 4), -1.0)
        opt.step()
        finals.append(p.detach().clone())
    assert not torch.allclose(*finals)


def test_sgd_nesterov_is_torchs():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    ours = build_optimizer("sgd", a.parameters(), lr=0.1, weight_decay=1e-4, momentum=0.9, nesterov=True)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=1e-4, momentum=0.9, nesterov=True)
    for _ in range(3):
        x = torch.randn(8, 4)
        for m, o in ((a, ours), (b, ref)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)  # fused against per-tensor SGD


def test_batch_norm_gets_its_own_weight_decay_and_the_rest_keeps_the_trainers():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Linear(4, 2))
    bn = batch_norm_parameters(model)
    assert [id(p) for p in bn] == [id(model[1].weight), id(model[1].bias)]
    opt = build_optimizer("sgd", [{"params": list(model.parameters()), "lr_scale": 2.0}], lr=0.1,
                          weight_decay=1e-4, bn_weight_decay=0.0, bn_params=bn)
    groups = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert groups[0.0] == {id(p) for p in bn}
    assert groups[1e-4] == {id(p) for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias)}
    assert all(g["lr"] == pytest.approx(0.2) for g in opt.param_groups)
    # a zero gradient: batch norm's weights stay, the others decay
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert moved == [True, True, False, False, True, True]
