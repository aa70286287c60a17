"""The perf suite's parts that are not timings: what the efficiency section's convolution ceiling runs."""
import torch
from torch import nn

from benchmark.perf.efficiency import convolution_calls, convolutions_step
from benchmark.trainer import apply_speed_levers, in_layout
from encoders import build_encoder
from encoders.channels_last_ops import is_channels_last_3d


def tiny_encoder():
    torch.manual_seed(0)
    enc = build_encoder("vdim_small", ndf=8, n_1x1=1, head_dim=16).train()
    apply_speed_levers(enc, True, compile=False)
    return enc, in_layout([torch.randn(2, 3, 16, 64, 64)], True)[0]


def test_convolution_calls_are_the_steps_calls_in_its_layout():
    enc, x = tiny_encoder()
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv3d)]
    calls = convolution_calls(enc, x, "bf16")
    assert len(calls) == len(convs) and {id(c[0]) for c in calls} == {id(m) for m in convs}  # each called once
    first, *rest = calls
    assert first[1].shape == x.shape and first[1].dtype == torch.float32 and not first[3]  # the clip needs no gradient
    assert all(needs_grad for *_, needs_grad in rest)
    for conv, inp, grad, _ in calls:
        assert is_channels_last_3d(inp) or inp.shape[2:].numel() == 1  # the trainer's layout (1x1x1 maps are both)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(inp)
        assert grad.shape == out.shape and grad.dtype == out.dtype == torch.bfloat16 and grad.stride() == out.stride()


def test_convolutions_step_runs_every_convolution_backward_and_leaves_no_gradients():
    enc, x = tiny_encoder()
    seen = []
    for m in enc.modules():
        if isinstance(m, nn.Conv3d):
            m.weight.register_hook(lambda g, m=m: seen.append(m))
    convolutions_step(enc, x, torch.device("cpu"), "fp32")()
    assert len(seen) == sum(isinstance(m, nn.Conv3d) for m in enc.modules())
    assert all(p.grad is None for p in enc.parameters())  # the encoder's own step is untouched
