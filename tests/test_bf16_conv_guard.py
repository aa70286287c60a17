"""benchmark.bf16_conv_guard: wrong bf16 convolution weight gradients are found and computed in fp32.

A CPU that gets them wrong is simulated by a convolution whose weight gradient is corrupted under
bf16 autocast only; the last test runs this CPU's own oneDNN kernels at a shape that one CPU
(AVX-512 BF16 without AMX) got wrong, and passes on any CPU only if the guard works.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.bf16_conv_guard import (TOLERANCE, fp32_weight_gradient_class, guard_convolutions,
                                       weight_gradient_error, weight_gradient_fp32)
from benchmark.trainer import LoopSettings, new_scaler, train_steps

CL = torch.channels_last_3d


class _Corrupt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return w.view_as(w)

    @staticmethod
    def backward(ctx, g):
        return -3.0 * g + 1.0


class BrokenUnderBf16Conv3d(nn.Conv3d):
    """As a CPU whose bf16 weight gradient is wrong: right forward and input gradient, wrong weight
    gradient, under CPU bf16 autocast only."""

    def _conv_forward(self, x, weight, bias):
        if torch.is_autocast_enabled("cpu") and weight.requires_grad:
            weight = _Corrupt.apply(weight)
        return super()._conv_forward(x, weight, bias)


def reference_weight_gradient(conv, x, g):
    """fp64 autograd through F.conv3d (with explicit padding for non-zero modes)."""
    w = conv.weight.detach().double().requires_grad_(True)
    xx = x.double()
    padding = conv.padding
    if conv.padding_mode != "zeros":
        xx = F.pad(xx, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    y = F.conv3d(xx, w, None, conv.stride, padding, conv.dilation, conv.groups)
    y.backward(g.double())
    return w.grad


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=(0, 1, 2), stride=(1, 2, 2)),
                                    dict(padding=1, padding_mode="reflect"), dict(padding=2, dilation=2, groups=2)])
def test_fp32_weight_gradient_matches_fp64_autograd(kwargs):
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, 3, bias=False, **kwargs)
    x = torch.randn(2, 4, 5, 9, 9)
    g = torch.randn_like(conv(x))
    got = weight_gradient_fp32(conv, x, g)
    ref = reference_weight_gradient(conv, x, g)
    # fp32 sums of 2 x 5 x 9 x 9 = 810 products: within 1e-5 of fp64, relative to the largest entry
    assert got.dtype == torch.float32
    assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_the_fp32_weight_gradient_class_changes_only_the_weight_gradient():
    torch.manual_seed(0)
    plain = nn.Conv3d(4, 8, 3, padding=1)
    fixed = nn.Conv3d(4, 8, 3, padding=1)
    fixed.load_state_dict(plain.state_dict())
    fixed.__class__ = fp32_weight_gradient_class(nn.Conv3d)
    assert list(fixed.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 4, 4, 8, 8).contiguous(memory_format=CL)
    grads = []
    for conv in (plain, fixed):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(xi)
        g = torch.ones_like(y)
        y.backward(g)
        grads.append((y.detach(), xi.grad, conv.bias.grad, conv.weight.grad))
    (y0, dx0, db0, _), (y1, dx1, db1, dw1) = grads
    assert torch.equal(y0, y1) and torch.equal(dx0, dx1) and torch.equal(db0, db1)  # the same bf16 kernels
    ref = weight_gradient_fp32(fixed, x, torch.ones_like(y1))  # from the input as given (fp32 here)
    assert dw1.dtype == torch.float32 and torch.equal(dw1, ref)
    # outside autocast it is the plain convolution
    fixed.weight.grad = plain.weight.grad = None
    for conv in (plain, fixed):
        conv(x).sum().backward()
    assert torch.equal(plain.weight.grad, fixed.weight.grad)


def test_weight_gradient_error_finds_a_wrong_gradient_and_passes_a_right_one():
    torch.manual_seed(0)
    good = nn.Conv3d(8, 8, 3, padding=1, bias=False)
    bad = BrokenUnderBf16Conv3d(8, 8, 3, padding=1, bias=False)
    shape = (2, 8, 4, 8, 8)
    assert weight_gradient_error(good, shape, CL) < TOLERANCE
    assert weight_gradient_error(bad, shape, CL) > 1.0
    assert good.weight.grad is None and bad.weight.grad is None


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.b = BrokenUnderBf16Conv3d(8, 8, 3, padding=1, bias=False)
        self.calls = 0

    def forward(self, views, labels=None):
        self.calls += 1
        h = self.b(F.dropout(torch.relu(self.bn(self.a(views[0]))), 0.5))
        return {"loss": h.float().pow(2).mean()}


def test_guard_fixes_only_the_wrong_convolution_and_leaves_the_model_and_rngs_as_they_were():
    torch.manual_seed(0)
    model = TwoConvs()
    x = torch.randn(2, 3, 4, 8, 8).contiguous(memory_format=CL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fixed = guard_convolutions(model, lambda m: m([x]))
    assert fixed == ["b"]
    assert type(model.b).__name__ == "Fp32WeightGradientBrokenUnderBf16Conv3d" and type(model.a) is nn.Conv3d
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert model.calls == 0 and torch.equal(torch.get_rng_state(), rng)
    # the fixed convolution's weight gradient under bf16 is now fp32's on its bf16 input
    h = torch.randn(2, 8, 4, 8, 8).bfloat16().float().contiguous(memory_format=CL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model.b(h)
    g = torch.randn(y.shape).to(y.dtype)
    y.backward(g)
    ref = reference_weight_gradient(model.b, h, g.float())
    assert ((model.b.weight.grad.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, steps):
        self.steps = steps

    def __iter__(self):
        gen = torch.Generator().manual_seed(0)
        for step in range(self.steps):
            yield {"views": [torch.randn(2, 3, 4, 8, 8, generator=gen)], "label": torch.zeros(2), "step": step}


@pytest.mark.parametrize("precision,check,expected", [("bf16", True, ["b"]), ("bf16", False, []), ("fp32", True, [])])
def test_train_steps_checks_before_the_first_bf16_step(precision, check, expected):
    torch.manual_seed(0)
    model = TwoConvs()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    settings = LoopSettings(steps=2, precision=precision, progress=False, checkpoint_every=10**6, bf16_conv_check=check)
    result = train_steps(model, Batches(2), opt, sched, new_scaler(torch.device("cpu"), precision),
                         torch.device("cpu"), settings)
    assert result.fp32_weight_gradients == expected
    assert model.calls == 2  # the check's forward ran on a copy


def test_this_cpus_256_channel_convolutions_train_on_right_weight_gradients():
    """The 2D-3D ResNet's layer4 convolution at DPC's 64 px blocks (a 2x2x2 map): on a 2-core
    AMD EPYC (AVX-512 BF16, no AMX) oneDNN's bf16 weight gradient was wrong at this shape."""
    torch.manual_seed(0)
    conv = nn.Conv3d(256, 256, 3, padding=1, bias=False).to(memory_format=CL)
    x = torch.randn(32, 256, 2, 2, 2).contiguous(memory_format=CL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        guard_convolutions(conv, lambda m: m(x))
    assert weight_gradient_error(conv, tuple(x.shape), CL, repeats=3) < TOLERANCE
