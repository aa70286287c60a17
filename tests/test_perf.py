"""The perf suite's parts that are not timings: what the efficiency section's ceilings run and count."""
import pytest
import torch
from torch import nn

from benchmark.perf.efficiency import (batch_norm_map_bytes, batch_norm_traffic, ceiling_rows, convolution_calls,
                                       convolutions_step)
from benchmark.trainer import apply_speed_levers, in_layout
from encoders import build_encoder
from encoders.channels_last_ops import is_channels_last_3d


def tiny_encoder():
    torch.manual_seed(0)
    enc = build_encoder("vdim_small", ndf=8, n_1x1=1, head_dim=16).train()
    apply_speed_levers(enc, True, compile=False)
    return enc, in_layout([torch.randn(2, 3, 16, 64, 64)], True)[0]


def inputs_met_in_a_bf16_forward(enc, x):
    """``(shape, dtype, strides)`` of every convolution's input in one bf16 forward of the step itself."""
    met = []
    hooks = [m.register_forward_pre_hook(lambda m, args: met.append((args[0].shape, args[0].dtype, args[0].stride())))
             for m in enc.modules() if isinstance(m, nn.Conv3d)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        enc(x)
    for h in hooks:
        h.remove()
    return met


def test_convolution_calls_are_the_steps_calls_in_its_layout():
    enc, x = tiny_encoder()
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv3d)]
    calls = convolution_calls(enc, x, "bf16")
    assert len(calls) == len(convs) and {id(c[0]) for c in calls} == {id(m) for m in convs}  # each called once
    first, *rest = calls
    assert first[1].shape == x.shape and first[1].dtype == torch.float32 and not first[3]  # the clip needs no gradient
    assert is_channels_last_3d(first[1])  # the trainer's layout (in_layout)
    assert all(needs_grad for *_, needs_grad in rest)
    # Every later input is in the layout the step's own forward hands that convolution: which layout a
    # convolution returns for a channels-last input depends on the CPU's oneDNN kernels, so it is read
    # off a forward here rather than assumed.
    met = inputs_met_in_a_bf16_forward(enc, x)
    assert [(inp.shape, inp.dtype, inp.stride()) for _, inp, _, _ in calls] == met
    for conv, inp, grad, _ in calls:
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


@pytest.mark.parametrize("precision,value_bytes", [("fp32", 4), ("bf16", 2)])
def test_batch_norm_map_bytes_are_the_normalised_maps(precision, value_bytes):
    net = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Conv3d(4, 6, 3), nn.BatchNorm3d(6), nn.ReLU())
    # maps 2 x 4 x 5 x 6 x 6 and, after the unpadded 3x3x3, 2 x 6 x 3 x 4 x 4
    assert batch_norm_map_bytes(net, torch.randn(2, 3, 5, 6, 6), precision) == [1440 * value_bytes, 576 * value_bytes]


def test_ceiling_rows_add_the_batch_norms_traffic_to_the_convolutions_time():
    # convolutions: batch 2 at 4 clips/s, 0.5 s; the batch norms' traffic 8 GB in 0.5 s; so 2 clips/s
    rates = {"step": 1.0, "convolutions": 4.0, "peak": 1e12}
    alone, with_traffic = ceiling_rows("enc", "bf16", rates, 2, 10.0, (8e9, 0.5))
    assert alone["clips_per_s"] == 4.0 and alone["share_of_step"] == 0.25
    assert with_traffic["clips_per_s"] == pytest.approx(2.0) and with_traffic["batch_norm_traffic_gb"] == 8.0
    assert with_traffic["fraction_of_peak"] == pytest.approx(10e9 * 3 * 2.0 / 1e12)
    assert with_traffic["copy_gb_s"] == 16.0
    assert ceiling_rows("enc", "bf16", rates, 2, 10.0, None) == [alone]  # no batch norms: one ceiling


def test_batch_norm_traffic_times_each_map_at_the_bandwidth_of_its_own_size(monkeypatch):
    import benchmark.perf.efficiency as eff
    measured = []

    def bandwidth(device, nbytes, repeats):  # a cache-sized map copies twice as fast as a larger one
        measured.append(nbytes)
        return 2e9 if nbytes <= 1 << 20 else 1e9
    monkeypatch.setattr(eff, "copy_bandwidth", bandwidth)
    nbytes, seconds = batch_norm_traffic([1 << 20, 1 << 20, 1 << 22], torch.device("cpu"), 1)
    passes = eff.BATCH_NORM_PASSES
    assert sorted(measured) == [1 << 20, 1 << 22]  # one measurement per distinct size
    assert nbytes == passes * (6 << 20)
    assert seconds == pytest.approx(passes * (2 * (1 << 20) / 2e9 + (1 << 22) / 1e9))
