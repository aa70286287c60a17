import copy

import pytest
import torch
from torch import nn

from encoders import build_encoder
from rounding import assert_same_sums, magnitudes

TABLE1 = {"block1": (64, 16, 64, 64), "block2": (64, 14, 62, 62), "block3": (128, 14, 30, 30),
          "block4": (256, 14, 14, 14), "block5": (512, 7, 7, 7), "block6": (512, 5, 5, 5),
          "block7": (512, 3, 3, 3), "block8": (512, 1, 1, 1)}


def test_vdim_matches_table1_sizes_and_parameter_count():
    enc = build_encoder("vdim").eval()
    with torch.no_grad():
        out = enc(torch.zeros(1, 3, 32, 128, 128))
    assert {k: tuple(v.shape[1:]) for k, v in out.items() if k != "global"} == TABLE1
    assert out["global"].shape == (1, 512)
    params = sum(p.numel() for p in enc.parameters()) / 1e6
    assert abs(params - 17.3) / 17.3 < 0.03  # phi_8 o Psi, as the paper counts


def test_vdim_without_block_bn_has_bn_only_on_its_output_and_in_phi8():
    """block_bn=False (Table 1's ConvBlock(..., False), AMDIM's use_bn=0): no BatchNorm inside the
    eight blocks; the output BN (sec. 4) and phi_8's two stay, and the maps are Table 1's."""
    plain, no_bn = build_encoder("vdim"), build_encoder("vdim", block_bn=False)
    bns = [n for n, m in no_bn.named_modules() if isinstance(m, nn.BatchNorm3d)]
    assert bns == ["stages.block8.1", "global_head.phi.bn1", "global_head.phi.out_bn"]
    # every block BN removed: 2 per ConvBlock, 1 per ResNxN and per Res1x1, each 2 x channels
    removed = sum(p.numel() for n, m in plain.named_modules() if isinstance(m, nn.BatchNorm3d)
                  and not n.startswith(("stages.block8.1", "global_head")) for p in m.parameters())
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in no_bn.parameters()) == removed
    assert removed == 2 * (2 * 64 + 2 * 64 + 4 * 128 + 4 * 256 + 4 * 512 * 3 + 512)
    with torch.no_grad():
        out = no_bn.eval()(torch.zeros(1, 3, 32, 128, 128))
    assert {k: tuple(v.shape[1:]) for k, v in out.items() if k != "global"} == TABLE1


def test_vdim_small_keeps_local_maps():
    enc = build_encoder("vdim_small").eval()
    with torch.no_grad():
        out = enc(torch.zeros(2, 3, 16, 64, 64))
    assert out["block5"].shape[2:] == (7, 7, 7) and out["block6"].shape[2:] == (5, 5, 5)


@pytest.mark.parametrize("name,shape", [("vdim_small", (16, 64, 64)), ("slow_r50", (4, 32, 32)),
                                        ("r2plus1d_r18", (4, 32, 32)), ("x3d_s", (4, 32, 32))])
def test_backbones_forward_backward_and_global(name, shape):
    enc = build_encoder(name)
    out = enc(torch.randn(2, 3, *shape))
    assert out["global"].shape == (2, enc.global_dim)
    out["global"].sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


def test_slow_r50_parameter_count_with_head():
    enc = build_encoder("slow_r50")
    params = sum(p.numel() for p in enc.parameters()) + 2048 * 400 + 400
    assert abs(params / 1e6 - 32.45) < 0.01


def test_wrong_input_size_names_expected_size():
    enc = build_encoder("vdim_small")
    with pytest.raises(ValueError, match=r"expects input \[B, 3, 16, 64, 64\]"):
        enc(torch.zeros(1, 3, 16, 32, 32))


@pytest.mark.parametrize("kernel,stride", [((3, 4, 4), (1, 2, 2)), ((1, 4, 4), (1, 2, 2)), ((1, 3, 3), (1, 1, 1)),
                                           ((2, 2, 2), (2, 2, 2)), ((3, 3, 3), (1, 1, 1))])
@pytest.mark.parametrize("autocast", [False, True])
def test_pooled_shortcut_keeps_channels_last_and_equals_plain_average_pooling(kernel, stride, autocast):
    """The trainer runs channels-last 3-D; CPU's avg_pool3d alone returns contiguous tensors,
    which would make every residual sum and gradient after it mix the two layouts. Purely
    spatial kernels take the 2-D route, the others the window fold; all must equal nn.AvgPool3d
    on a contiguous copy up to the rounding of a window's sum, also under bf16 autocast (which runs
    the pool in fp32). The input spans many magnitudes, so the bound is tight where it matters."""
    from encoders.channels_last_ops import LayoutKeepingAvgPool3d
    x = torch.randn(2, 8, 6, 10, 10) * torch.logspace(-4, 4, 10).view(1, 1, 1, 1, 10)
    if autocast:
        x = x.bfloat16()
    x_cl = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    x_plain = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        out = LayoutKeepingAvgPool3d(kernel, stride)(x_cl)
        expected = torch.nn.AvgPool3d(kernel, stride)(x_plain)
    assert out.dtype == expected.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last_3d) and not out.is_contiguous()
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    assert x_cl.grad.is_contiguous(memory_format=torch.channels_last_3d) and not x_cl.grad.is_contiguous()
    window = kernel[0] * kernel[1] * kernel[2]
    out_mag, grad_mag, _ = magnitudes(lambda a, _: torch.nn.functional.avg_pool3d(a, kernel, stride), x, None, weights)
    assert_same_sums(out, expected, out_mag, window)
    assert_same_sums(x_cl.grad, x_plain.grad, grad_mag, window)


@pytest.mark.parametrize("kernel,padding", [((1, 5, 5), (0, 2, 2)), ((3, 1, 1), (1, 0, 0)), ((3, 3, 3), (1, 2, 1))])
@pytest.mark.parametrize("autocast", [False, True])
def test_reflect_padded_conv_equals_nn_conv3d_on_channels_last_input(kernel, padding, autocast):
    """VDIM's reflect-padded first layer pads a channels-last map by concatenation: output, input
    gradient and weight gradient must equal nn.Conv3d's (which pads with reflection_pad3d) up to
    the rounding of the convolution's sums (the padded maps may reach oneDNN in different layouts),
    both convolving channels-last; the padding itself is a copy and equals F.pad's exactly."""
    from encoders.channels_last_ops import _ReflectPadChannelsLast
    from encoders.channels_last_ops import ReflectPadConv3d
    torch.manual_seed(0)
    ours = ReflectPadConv3d(3, 4, kernel, padding=padding, bias=False, padding_mode="reflect")
    plain = torch.nn.Conv3d(3, 4, kernel, padding=padding, bias=False, padding_mode="reflect")
    plain.load_state_dict(ours.state_dict())
    ours.to(memory_format=torch.channels_last_3d), plain.to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 3, 6, 9, 9).contiguous(memory_format=torch.channels_last_3d)
    x_cl, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    pads = ours._reversed_padding_repeated_twice
    torch.testing.assert_close(_ReflectPadChannelsLast.apply(x, pads), torch.nn.functional.pad(x, pads, mode="reflect"),
                               rtol=0, atol=0)
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        out, expected = ours(x_cl), plain(x_plain)
    weights = torch.randn_like(expected, dtype=torch.float32)
    (out.float() * weights).sum().backward()
    (expected.float() * weights).sum().backward()
    cast = (lambda t: t.bfloat16()) if autocast else (lambda t: t)  # what the convolution sees
    out_mag, x_mag, w_mag = magnitudes(
        lambda a, w: torch.nn.functional.conv3d(torch.nn.functional.pad(a, pads, mode="reflect"), w),
        cast(x), cast(plain.weight), weights)
    taps = kernel[0] * kernel[1] * kernel[2]
    assert_same_sums(out, expected, out_mag, 3 * taps)
    assert_same_sums(x_cl.grad, x_plain.grad, x_mag, 4 * taps * 8)  # a reflected voxel gathers up to 8 positions
    assert_same_sums(ours.weight.grad, plain.weight.grad, w_mag, expected[:, 0].numel())


class RecordedOps:
    """The ATen ops that run inside it (a TorchDispatchMode)."""

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        names = self.names = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                names.append(func.__name__)
                return func(*args, **(kwargs or {}))
        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


MATMUL_CONVS = [  # (input shape, kernel, stride, how it runs, the same sums as the convolution, one product?)
    ((2, 16, 3, 5, 5), (1, 1, 1), (1, 1, 1), "view", True),
    ((3, 16, 1, 1, 1), (1, 1, 1), (1, 1, 1), "view", True),
    ((2, 16, 3, 3, 3), (1, 3, 3), (1, 1, 1), "view", False),   # block 8's spatial convolution: kernel spans H, W
    ((2, 16, 3, 1, 1), (3, 1, 1), (1, 1, 1), "view", False),   # and its temporal one
    ((2, 16, 3, 5, 5), (1, 3, 3), (1, 1, 1), "conv", True),    # sliding windows, 24 output channels: a convolution
    ((2, 16, 3, 3, 1), (3, 1, 1), (1, 1, 1), "conv", True),    # T summed but H kept after it in memory: no view
    ((2, 16, 3, 5, 5), (1, 3, 3), (1, 1, 1), "rows", False),   # blocks 6-7's spatial convolutions (overlapping)
    ((2, 16, 5, 3, 3), (3, 1, 1), (1, 1, 1), "rows", False),   # and their temporal ones
    ((2, 16, 3, 6, 7), (1, 2, 2), (1, 2, 2), "rows", False),   # block 5's spatial one (kernel = stride), odd W
    ((2, 16, 4, 3, 3), (2, 1, 1), (2, 1, 1), "rows", False),   # block 5's temporal one
    ((2, 16, 4, 7, 6), (2, 3, 3), (1, 2, 2), "rows", False),   # overlapping and strided in every dimension
]


@pytest.mark.parametrize("shape, kernel, stride, route, identical", MATMUL_CONVS)
@pytest.mark.parametrize("autocast", [False, True])
def test_matmul_conv_equals_nn_conv3d(shape, kernel, stride, route, identical, autocast, monkeypatch):
    """An unpadded convolution of a channels-last CPU map runs as F.linear, and no convolution
    runs, where it is one matrix product of the map's memory ("view") or, from
    UNFOLD_MIN_OUT_CHANNELS output channels (24 here), of its windows copied out as rows ("rows");
    its output stays channels-last. 1x1x1 products and their input gradients equal nn.Conv3d's up
    to the rounding of their sums (16 input or 24 output channels). Every result (output, input and weight gradients) is as close to a float64 reference
    as nn.Conv3d's, within a bf16 rounding under autocast."""
    from encoders import channels_last_ops as ops
    if route == "rows":
        monkeypatch.setattr(ops, "UNFOLD_MIN_OUT_CHANNELS", 24)
    torch.manual_seed(0)
    ours = ops.MatmulConv3d(16, 24, kernel, stride, bias=False)
    plain = torch.nn.Conv3d(16, 24, kernel, stride, bias=False)
    plain.load_state_dict(ours.state_dict())
    ours.to(memory_format=torch.channels_last_3d), plain.to(memory_format=torch.channels_last_3d)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last_3d)
    x_ours, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        with RecordedOps() as ops:
            out = ours(x_ours)
        expected = plain(x_plain)
    assert any("convolution" in n for n in ops.names) == (route == "conv")
    # the "conv" route is ATen's convolution, whose output layout depends on the CPU's kernels (a
    # bf16 convolution without native bf16 instructions may return a contiguous map): as nn.Conv3d's
    keeps_layout = route != "conv" or expected.is_contiguous(memory_format=torch.channels_last_3d)
    assert out.is_contiguous(memory_format=torch.channels_last_3d) == keeps_layout and out.shape == expected.shape
    assert out.dtype == expected.dtype
    weights = torch.randn_like(expected, dtype=torch.float32)
    (out.float() * weights).sum().backward()
    (expected.float() * weights).sum().backward()
    assert x_ours.grad.dtype == x.dtype
    assert x_ours.grad.is_contiguous(memory_format=torch.channels_last_3d) or route == "conv"
    if identical:
        cast = (lambda t: t.bfloat16()) if autocast else (lambda t: t)
        out_mag, x_mag, _ = magnitudes(lambda a, w: torch.nn.functional.conv3d(a, w, None, stride), cast(x),
                                       cast(plain.weight), weights)
        assert_same_sums(out, expected, out_mag, 16)
        assert_same_sums(x_ours.grad, x_plain.grad, x_mag, 24)
    # float64 of the same inputs (rounded to bf16 under autocast, as the op sees them)
    cast = (lambda t: t.bfloat16().double()) if autocast else (lambda t: t.double())
    x64, w64 = cast(x).requires_grad_(), cast(plain.weight.detach())
    w64.requires_grad_()
    ref = torch.nn.functional.conv3d(x64, w64, None, stride)
    ref.backward(cast(weights))
    for mine, theirs, truth in ((out, expected, ref), (x_ours.grad, x_plain.grad, x64.grad),
                                (ours.weight.grad, plain.weight.grad, w64.grad)):
        scale = truth.abs().max()
        err_ours, err_plain = ((t.double() - truth).abs().max() / scale for t in (mine, theirs))
        assert err_ours <= max(2 * err_plain, 2 ** -8 if autocast else 1e-6)


@pytest.mark.parametrize("h_dtype, short_dtype", [(torch.bfloat16, torch.float32), (torch.float32, torch.float32),
                                                   (torch.bfloat16, torch.bfloat16)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_widening_shortcut_equals_adding_the_zero_padded_shortcut(h_dtype, short_dtype, channels_last):
    """A widening block's sum without F.pad: output and both gradients equal h + F.pad(short)'s bit for
    bit (each element is one rounded sum of the same two operands on both sides), in the sum's dtype, and each gradient comes back in its input's dtype and layout."""
    from encoders.channels_last_ops import _AddZeroPaddedShortcut
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    h = torch.randn(2, 12, 3, 4, 5).to(h_dtype).contiguous(memory_format=fmt)
    short = torch.randn(2, 5, 3, 4, 5).to(short_dtype).contiguous(memory_format=fmt)
    weights = torch.randn(2, 12, 3, 4, 5)
    results = []
    for add in (lambda a, b: a + torch.nn.functional.pad(b, (0, 0, 0, 0, 0, 0, 0, 7)), _AddZeroPaddedShortcut.apply):
        a, b = h.clone().requires_grad_(), short.clone().requires_grad_()
        out = add(a, b)
        (out.float() * weights).sum().backward()
        results.append((out, a.grad, b.grad))
    for expected, ours in zip(*results):
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    out, h_grad, short_grad = results[1]
    assert h_grad.dtype == h_dtype and short_grad.dtype == short_dtype
    assert h_grad.is_contiguous(memory_format=fmt) and short_grad.is_contiguous(memory_format=fmt)


def test_3d_pool_is_the_plain_avg_pool3d_in_one_graph_under_torch_compile():
    """The window fold is for eager CPU; traced by torch.compile (trainer.compile) the pool must
    stay one graph with ATen's avg_pool3d in it, which inductor fuses with its neighbours."""
    import torch._dynamo
    from encoders.channels_last_ops import LayoutKeepingAvgPool3d
    pool = LayoutKeepingAvgPool3d((3, 3, 3), (1, 1, 1))
    x = torch.randn(2, 8, 5, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    explained = torch._dynamo.explain(pool)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    assert "avg_pool3d" in explained.graphs[0].code


def test_vdim_small_gradients_stay_channels_last_through_the_residual_blocks():
    from encoders.channels_last_ops import convert_to_channels_last_routes
    from encoders.vdim import ResNxN
    enc = convert_to_channels_last_routes(build_encoder("vdim_small")).to(memory_format=torch.channels_last_3d)
    grads = []  # the gradient reaching each residual block's input, as autograd hands it on

    def watch_input(_, args):
        args[0].register_hook(grads.append)
    for module in enc.modules():
        if isinstance(module, ResNxN):
            module.register_forward_pre_hook(watch_input)
    x = torch.randn(2, 3, 16, 64, 64).contiguous(memory_format=torch.channels_last_3d)
    out = enc(x)["global"]
    (out * torch.randn_like(out)).sum().backward()  # (a plain sum of the batch-normed output has no gradient)
    assert len(grads) == 6
    for i, g in enumerate(grads):
        assert g.is_contiguous(memory_format=torch.channels_last_3d) and not g.is_contiguous(), f"block {i}"


def test_the_plain_table1_model_converts_to_its_channels_last_routes_with_the_same_keys_and_numbers():
    """encoders/vdim.py is Table 1 in plain modules; the conversion swaps in the routes in place,
    keeping every parameter and state-dict key, so either side loads the other's checkpoints."""
    from encoders import channels_last_ops as ops
    from encoders.vdim import ZeroPaddedShortcutSum
    torch.manual_seed(0)
    plain = build_encoder("vdim_small", ndf=8, n_1x1=1, head_dim=16)
    kinds = {type(m) for m in plain.modules()}
    assert not kinds & {ops.MatmulConv3d, ops.ReflectPadConv3d, ops.LayoutKeepingAvgPool3d}
    assert {nn.Conv3d, nn.AvgPool3d, ZeroPaddedShortcutSum} <= kinds
    converted = ops.convert_to_channels_last_routes(copy.deepcopy(plain))
    kinds = [type(m) for m in converted.modules()]
    assert nn.Conv3d not in kinds and nn.AvgPool3d not in kinds and ZeroPaddedShortcutSum not in kinds
    assert {ops.MatmulConv3d, ops.ReflectPadConv3d, ops.LayoutKeepingAvgPool3d,
            ops.CopyingZeroPaddedShortcutSum} <= set(kinds)
    assert list(converted.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(converted.state_dict().values(), plain.state_dict().values()))
    plain.eval(), converted.eval()
    converted.to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 3, 16, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        want = plain.double()(x)
        got = converted.double()(x.contiguous(memory_format=torch.channels_last_3d))
    for name in want:  # other kernels sum in another order: float64 rounding over a few thousand terms
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-9, msg=name)
