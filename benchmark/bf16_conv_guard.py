"""Convolution weight gradients under CPU bf16 autocast, checked against fp32 and fixed where wrong.

On some CPUs oneDNN's bf16 convolution returns wrong weight gradients for some shapes while its
forward and input gradient are right: on a 2-core AMD EPYC with AVX-512 BF16 and no AMX
(torch 2.14.1), the weight gradient of a 256-channel 3x3x3 convolution on a 2x8x8 map was off by
more than its own magnitude every time and now and then NaN, and most of the 3-D ResNets' layers
trained on gradients uncorrelated with fp32's (pytorch/pytorch#163347 reports wrong bf16
convolutions on AMD CPUs). A run would go on and report numbers from a broken optimiser.

:func:`guard_convolutions` runs before the first bf16 step: it finds every convolution's input
shape and layout in one forward of the first batch, compares each one's bf16 weight gradient with
an fp32 one of the same bf16-valued inputs, and swaps each convolution that disagrees for a
subclass whose weight gradient is computed in fp32 from the same saved input (forward and input
gradient stay bf16). Where every convolution agrees nothing changes, to the bit.
"""
from __future__ import annotations

import copy
import logging
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from benchmark.checkpoint import rng_state, set_rng_state
from encoders.channels_last_ops import is_channels_last_3d

log = logging.getLogger(__name__)

# bf16 keeps 8 significant bits and oneDNN accumulates in fp32, so a right weight gradient is within
# about 2^-8 of fp32's, relative to its largest entry (0.002-0.003 measured; ATen's own bf16
# convolution, 0.011-0.014); the wrong ones measured 0.9 and more. 0.05 separates the two.
TOLERANCE = 0.05
REPEATS = 2  # the wrong kernels were not wrong on every call
_checked: Dict[Tuple, float] = {}  # one check per convolution and input, per process


def weight_gradient_fp32(conv: _ConvNd, x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """``conv``'s weight gradient for input ``x`` and output gradient ``grad_out``, in fp32."""
    x, grad_out = x.float(), grad_out.float()
    dims = conv.weight.dim() - 2
    padding = conv.padding
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = (0,) * dims
    return torch.ops.aten.convolution_backward(
        grad_out, x, conv.weight.detach().float(), None, conv.stride, padding, conv.dilation, False,
        (0,) * dims, conv.groups, (False, True, False))[1]


class _Fp32WeightGradient(torch.autograd.Function):
    """Identity on the convolution's output ``y``; its backward adds the weight gradient in fp32
    (the convolution itself ran with a detached weight, so oneDNN computes none)."""

    @staticmethod
    def forward(ctx, y, x, weight, conv):
        ctx.save_for_backward(x)
        ctx.conv = conv
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, = ctx.saved_tensors
        return grad_out, None, weight_gradient_fp32(ctx.conv, x, grad_out).to(ctx.conv.weight.dtype), None


_fp32_classes: Dict[type, type] = {}


def fp32_weight_gradient_class(kind: type) -> type:
    """The subclass of convolution class ``kind`` whose weight gradient under CPU bf16 autocast is
    computed in fp32 (same parameters and state-dict keys)."""
    if kind not in _fp32_classes:
        def _conv_forward(self, x, weight, bias):
            if not (weight.requires_grad and torch.is_grad_enabled() and x.device.type == "cpu"
                    and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
                return kind._conv_forward(self, x, weight, bias)
            y = kind._conv_forward(self, x, weight.detach(), bias)
            return _Fp32WeightGradient.apply(y, x, weight, self)
        _fp32_classes[kind] = type(f"Fp32WeightGradient{kind.__name__}", (kind,), {"_conv_forward": _conv_forward})
    return _fp32_classes[kind]


def memory_format_of(x: torch.Tensor):
    if x.dim() == 5 and is_channels_last_3d(x):
        return torch.channels_last_3d
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def weight_gradient_error(conv: _ConvNd, shape, memory_format, repeats: int = REPEATS) -> float:
    """Largest difference between ``conv``'s bf16-autocast weight gradient and fp32's on random
    bf16-valued inputs of ``shape``, relative to fp32's largest entry (NaN counts as infinite)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).bfloat16().float().contiguous(memory_format=memory_format)
    saved = conv.weight.grad
    worst = 0.0
    try:
        for _ in range(repeats):
            conv.weight.grad = None
            with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                y = conv(x)
            g = torch.randn(y.shape, generator=gen).to(y.dtype).contiguous(memory_format=memory_format_of(y))
            y.backward(g)
            ref = weight_gradient_fp32(conv, x, g)
            err = ((conv.weight.grad.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
            worst = max(worst, err if err == err else float("inf"))
    finally:
        conv.weight.grad = saved
    return worst


def conv_inputs(model: nn.Module, forward: Callable[[nn.Module], object]) -> Dict[str, Tuple[tuple, object]]:
    """Every convolution of ``model`` that ``forward(model)`` calls: its input's shape and layout.
    The forward runs on a copy without gradients, so the model's buffers and attributes (queues,
    step counters) and every RNG are as before."""
    probe = copy.deepcopy(model)
    seen: Dict[str, Tuple[tuple, object]] = {}

    def record(name):
        def hook(module, args):
            seen.setdefault(name, (tuple(args[0].shape), memory_format_of(args[0])))
        return hook
    for name, m in probe.named_modules():
        if isinstance(m, _ConvNd):
            m.register_forward_pre_hook(record(name))
    rng = rng_state()
    try:
        with torch.no_grad():
            forward(probe)
    finally:
        set_rng_state(rng)
    return seen


def guard_convolutions(model: nn.Module, forward: Callable[[nn.Module], object]) -> List[str]:
    """Check every convolution that ``forward(model)`` (one step's forward under bf16 autocast)
    calls; swap the ones whose bf16 weight gradient is wrong for :func:`fp32_weight_gradient_class`.
    Returns their names."""
    convs = dict(model.named_modules())
    patched = []
    for name, (shape, fmt) in conv_inputs(model, forward).items():
        conv = convs[name]
        if not conv.weight.requires_grad or type(conv) in _fp32_classes.values():
            continue
        key = (type(conv), conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
               conv.dilation, conv.groups, conv.padding_mode, shape, fmt)
        if key not in _checked:
            _checked[key] = weight_gradient_error(conv, shape, fmt)
        if _checked[key] > TOLERANCE:
            conv.__class__ = fp32_weight_gradient_class(type(conv))
            patched.append(name)
    if patched:
        log.warning("bf16 weight gradients of %d of this CPU's convolutions differ from fp32 (beyond %.2f relative);"
                    " those are computed in fp32 (benchmark/bf16_conv_guard.py)", len(patched), TOLERANCE)
    return patched


def guard_where_needed(model: nn.Module, forward: Callable[[nn.Module], object], device: torch.device,
                       precision: str, enabled: bool = True) -> List[str]:
    """:func:`guard_convolutions` under bf16 autocast where it applies: bf16 on a CPU."""
    if not (enabled and precision == "bf16" and device.type == "cpu"):
        return []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return guard_convolutions(model, forward)
