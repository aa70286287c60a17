"""Channels-last CPU routes for the VDIM encoder's convolutions, pools, padding and widening
shortcut (:mod:`encoders.vdim`), applied as a conversion: :func:`convert_to_channels_last_routes`
(``trainer.channels_last``, as ``SyncBatchNorm.convert_sync_batchnorm`` is applied).

Each part is a subclass of a plain module (``nn.Conv3d``, ``nn.AvgPool3d``, reflection padding,
the zero-padded shortcut sum) with the same state-dict keys and numbers: bit for bit where the
tests say so, else within a rounding of a float64 reference. They exist because on a
channels-last 3-D map CPU PyTorch either drops the layout (``avg_pool3d``) or runs slow generic
loops (``reflection_pad3d``, oneDNN's 3-D convolution of small maps); the performance suite
(``python -m benchmark perf``) measures each. Everywhere else (CUDA, contiguous maps,
``torch.compile``) they hand over to the plain op.
"""
from __future__ import annotations

import itertools
import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _triple

from encoders.vdim import ZeroPaddedShortcutSum


def is_channels_last_3d(x: torch.Tensor) -> bool:
    """Stored channels-last 3-D (and not also plain contiguous, as a 1-channel or 1x1x1 map is)."""
    return x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()


def reflect_pad_by_concatenation(x: torch.Tensor, pad) -> torch.Tensor:
    """``F.pad(x, pad, mode="reflect")`` of a ``[B, C, T, H, W]`` map (``pad`` in F.pad's order, W
    first) as one concatenation per padded dimension of the map and its mirrored edge slices, each
    one element wide, in reflected order. The values are copies either way; CPU's
    ``reflection_pad3d`` copies a channels-last map element by element, and flipping the edges
    (``flip`` of a strided slice) costs more than the copy itself."""
    for dim, (before, after) in zip((4, 3, 2), (pad[0:2], pad[2:4], pad[4:6])):
        if before == after == 0:
            continue
        n = x.shape[dim]
        edges_before = [x.narrow(dim, i, 1) for i in range(before, 0, -1)]
        edges_after = [x.narrow(dim, n - 1 - i, 1) for i in range(1, after + 1)]
        x = torch.cat([*edges_before, x, *edges_after], dim)
    return x


class _ReflectPadChannelsLast(torch.autograd.Function):
    """Reflection padding with :func:`reflect_pad_by_concatenation` forward and ATen's own
    ``reflection_pad3d_backward``, so that gradients are summed exactly as ``F.pad``'s."""

    @staticmethod
    def forward(ctx, x, pad):
        ctx.save_for_backward(x)
        ctx.pad = pad
        return reflect_pad_by_concatenation(x, pad)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return torch.ops.aten.reflection_pad3d_backward(grad, x, ctx.pad), None


class ReflectPadConv3d(nn.Conv3d):
    """``nn.Conv3d(..., padding_mode="reflect")`` (VDIM's first layer, Table 1), the same module and
    state-dict keys, that pads a channels-last map on CPU with :class:`_ReflectPadChannelsLast`:
    bit-identical outputs and gradients (tested). Traced by ``torch.compile`` it pads as
    ``nn.Conv3d`` does."""

    def _conv_forward(self, x, weight, bias):
        if x.device.type != "cpu" or not is_channels_last_3d(x) or torch.compiler.is_compiling():
            return super()._conv_forward(x, weight, bias)
        padded = _ReflectPadChannelsLast.apply(x, self._reversed_padding_repeated_twice)
        return F.conv3d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


def matrix_product_rows(shape, kernel, stride) -> Optional[tuple]:
    """The output ``(T, H, W)`` of an unpadded convolution of a channels-last ``[B, C, T, H, W]``
    map that is one matrix product of a view of the map, else None. It is where every kernel size
    is 1 (stride 1, the dimension kept) or the whole extent (the dimension summed, output 1), with
    the kept dimensions before the summed ones in memory (``T, H, W, C``): then ``[B, T, H, W, C]``
    reshapes without a copy to rows of ``summed extents x C`` inputs."""
    out, summing = [], False
    for k, s, n in zip(kernel, stride, shape[2:]):
        if k == n and n > 1:  # summed over
            out.append(1)
            summing = True
        elif k == 1 and (s == 1 or n == 1) and not (summing and n > 1):  # kept, before any summed one
            out.append(n)
        else:
            return None
    return tuple(out)


def unpadded_output_size(shape, kernel, stride) -> List[int]:
    """``(To, Ho, Wo)``: how many windows of ``kernel`` at ``stride`` fit in the ``(T, H, W)`` of a
    ``[B, C, T, H, W]`` map, unpadded (a convolution's or pool's output size)."""
    return [(n - k) // s + 1 for n, k, s in zip(shape[2:], kernel, stride)]


def window_view(xp: torch.Tensor, kernel, stride) -> torch.Tensor:
    """The ``[B, To, Ho, Wo, kt, kh, kw, C]`` view of the windows of an unpadded convolution of a
    ``[B, T, H, W, C]`` map (a channels-last map's memory): no copy."""
    for dim, (k, s) in enumerate(zip(kernel, stride), 1):
        xp = xp.unfold(dim, k, s)
    return xp.permute(0, 1, 2, 3, 5, 6, 7, 4)


def window_slices(kernel, stride, out_size):
    """For every offset of a pooling window, in the order ATen's CPU loop visits them (t, then h,
    then w), the index that picks that element of every window at once: a strided view of the
    map of ``out_size`` windows."""
    for offset in itertools.product(*(range(k) for k in kernel)):
        yield (Ellipsis, *(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, out_size)))


class _WindowRows(torch.autograd.Function):
    """im2col of a channels-last map: every window of an unpadded convolution copied out as one
    row of ``kt * kh * kw * C`` inputs (C innermost, as the map lies). The backward adds each
    kernel offset's slice of the rows' gradient into a strided view of the map's gradient, one
    whole-map add per offset (a copy where windows do not overlap), summed in fp32 and rounded
    once, as the convolution's backward sums a bf16 input's gradient."""

    @staticmethod
    def forward(ctx, x, kernel, stride):
        windows = window_view(x.permute(0, 2, 3, 4, 1), kernel, stride)
        ctx.input_shape, ctx.kernel, ctx.stride, ctx.windows_shape = x.shape, kernel, stride, windows.shape
        return windows.reshape(math.prod(windows.shape[:4]), -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows):
        b, c, t, h, w = ctx.input_shape
        grad_windows = grad_rows.view(ctx.windows_shape)
        if ctx.kernel == ctx.stride:  # each input in at most one window: nothing is summed
            grad = grad_rows.new_zeros(b, t, h, w, c)
            window_view(grad, ctx.kernel, ctx.stride).copy_(grad_windows)
        else:
            grad = grad_rows.new_zeros(b, t, h, w, c, dtype=torch.promote_types(grad_rows.dtype, torch.float32))
            for offset, index in zip(itertools.product(*(range(k) for k in ctx.kernel)),
                                     window_slices(ctx.kernel, ctx.stride, ctx.windows_shape[1:4])):
                grad[(slice(None), *index[1:])] += grad_windows[(Ellipsis, *offset, slice(None))]
        return grad.permute(0, 4, 1, 2, 3).to(grad_rows.dtype), None, None


# Output channels from which an unpadded convolution that is not one product of the map's memory
# runs as im2col + one matrix product on CPU. Every copied-out input feeds c_out multiply-adds, so
# the copy pays where c_out is large: Table 1's blocks 5-7 (512) gain over oneDNN, narrower layers
# and larger maps do not (the perf suite's train section times the step with and without it).
UNFOLD_MIN_OUT_CHANNELS = 512


class MatmulConv3d(nn.Conv3d):
    """``nn.Conv3d`` (the same module and state-dict keys) that on a channels-last CPU map runs
    unpadded convolutions as matrix products, where oneDNN's 3-D convolution is slow:

    * where :func:`matrix_product_rows` says the convolution is one product of the map's memory as
      it lies, ``F.linear`` of that view: nothing is copied. That covers every 1 x 1 x 1
      convolution (AMDIM's residual 1x1 blocks and MLP heads, Table 1's blocks 3-4 temporal
      convolutions) and block 8's, whose kernels span its 3 x 3 and 3 x 1 x 1 inputs, where
      oneDNN's 3-D convolution is slower than the product;
    * else, from :data:`UNFOLD_MIN_OUT_CHANNELS` output channels (blocks 5-7's spatial and temporal
      convolutions on 14 x 7 x 7 to 5 x 3 x 3 maps), ``F.linear`` of the windows copied out as rows
      (:class:`_WindowRows`), where oneDNN's backward runs at a quarter of the matmul peak or less.

    Products of 1 x 1 x 1 convolutions and their input gradients are bit-identical to the
    convolution's; other sums run in another order, within a rounding (tested against float64).
    The output is channels-last again."""

    def _conv_forward(self, x, weight, bias):
        if not (x.device.type == "cpu" and x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)
                and self.padding == (0, 0, 0) and self.dilation == (1, 1, 1) and self.groups == 1
                and not torch.compiler.is_compiling()):
            return super()._conv_forward(x, weight, bias)
        out = matrix_product_rows(x.shape, self.kernel_size, self.stride)
        if out is not None:
            rows = x.permute(0, 2, 3, 4, 1).reshape(x.shape[0] * math.prod(out), -1)
        elif self.out_channels >= UNFOLD_MIN_OUT_CHANNELS:
            if torch.is_autocast_enabled("cpu") and x.dtype == torch.float32:
                x = x.to(torch.get_autocast_dtype("cpu"))  # as autocast casts a convolution's input
            out = unpadded_output_size(x.shape, self.kernel_size, self.stride)
            rows = _WindowRows.apply(x, self.kernel_size, self.stride)
        else:
            return super()._conv_forward(x, weight, bias)
        product = F.linear(rows, weight.permute(0, 2, 3, 4, 1).reshape(weight.shape[0], -1), bias)
        return product.view(x.shape[0], *out, -1).permute(0, 4, 1, 2, 3)


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity forward; backward hands its gradient back in the channels-last 3-D layout."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last_3d)


def cpu_autocast_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as CPU autocast hands it to ``avg_pool3d``: in fp32 (an fp32-list op), else unchanged."""
    return x.float() if torch.is_autocast_enabled("cpu") and x.is_floating_point() else x


class _WindowFoldAvgPool3d(torch.autograd.Function):
    """Unpadded 3-D average pooling of an fp32/fp64 channels-last map, summed window offset by
    window offset over whole strided views of the map.

    ATen's CPU ``avg_pool3d`` has no channels-last kernel: it loops over the elements of each
    window one at a time, ``sum += x`` in (t, h, w) order, and divides by the window's size.
    Here the same sums run in the same order as ``K - 1`` vectorised adds of the output-sized
    views (one per window offset), so every output is the same number bit for bit (tested). The
    backward adds ``grad / K`` into each offset's view in reverse offset order: the order in which
    ATen's backward loop over the output reaches each input, so gradients match bit for bit too,
    also where windows overlap.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride):
        out_size = unpadded_output_size(x.shape, kernel, stride)
        slices = list(window_slices(kernel, stride, out_size))
        total = x[slices[0]] + x[slices[1]]
        for index in slices[2:]:
            total.add_(x[index])
        ctx.input_shape, ctx.slices = x.shape, slices
        return total.div_(len(slices))

    @staticmethod
    def backward(ctx, grad):
        share = grad / len(ctx.slices)
        grad_input = torch.empty(ctx.input_shape, dtype=grad.dtype, device=grad.device,
                                 memory_format=torch.channels_last_3d).zero_()
        for index in reversed(ctx.slices):
            grad_input[index].add_(share)
        return grad_input, None, None


class LayoutKeepingAvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` whose output and input gradient keep the input's memory format.

    On CPU, ``avg_pool3d`` and its backward return contiguous tensors for channels-last 3-D
    input (``trainer.channels_last``). The residual sum after the pooled shortcut and the
    gradients summed into the block's input then mix the two layouts, which sends the adds,
    ReLU backwards and convolution backwards after them through slow strided paths. Values are
    unchanged: only the layout
    the same numbers are stored in. On CPU the pool also runs on channels-last code: a purely
    spatial pool (Table 1's blocks 3 and 4) as a 2-D pool of the frames
    (:meth:`spatial_avg_pool_channels_last`), an unpadded 3-D one (blocks 5-8) as whole-map adds
    (:class:`_WindowFoldAvgPool3d`); both give ``avg_pool3d``'s numbers bit for bit.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan_routes()

    def plan_routes(self) -> None:
        kernel, stride, padding = _triple(self.kernel_size), _triple(self.stride), _triple(self.padding)
        # (kernel, stride, padding) of the frames' 2-D pool when the pool does not reach across time
        self.frame_pool = (kernel[1:], stride[1:], padding[1:]) if kernel[0] == stride[0] == 1 and padding[0] == 0 else None
        # (kernel, stride) of the window fold, which takes the plain unpadded pool only
        plain = padding == (0, 0, 0) and not self.ceil_mode and self.divisor_override is None
        self.window_fold = (kernel, stride) if plain else None

    def forward(self, x):
        if not is_channels_last_3d(x):
            return super().forward(x)
        if x.device.type == "cpu":
            x = cpu_autocast_input(x)
            if self.frame_pool:
                return self.spatial_avg_pool_channels_last(x)
            # ATen sums fp32 in fp32 and fp64 in fp64, as the fold does; it sums bf16 in fp32. Under
            # torch.compile (trainer.compile) the plain pool stays: inductor fuses it with its
            # neighbours, and 27 strided slices per pool would slow the compiled step
            if self.window_fold and x.dtype in (torch.float32, torch.float64) and not torch.compiler.is_compiling():
                return _WindowFoldAvgPool3d.apply(x, *self.window_fold)
        out = super().forward(_ChannelsLastGrad.apply(x) if x.requires_grad else x)
        return out.contiguous(memory_format=torch.channels_last_3d)

    def spatial_avg_pool_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        """This ``(1, k, k)`` pool of a channels-last 3-D map as a 2-D pool of its ``B * T`` frames:
        channels-last 3-D is ``[B, T, H, W, C]`` in memory, so the frames are a channels-last 2-D
        batch without a copy, and CPU's 2-D pool has a channels-last kernel (its 3-D pool does not). It
        sums each window in the same order, so output and gradients equal ``avg_pool3d``'s bit for
        bit (tested). The caller casts as CPU autocast casts ``avg_pool3d``'s input, to fp32
        (``avg_pool2d`` autocast would leave in bf16)."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        out = F.avg_pool2d(frames, *self.frame_pool, self.ceil_mode, self.count_include_pad, self.divisor_override)
        return out.reshape(b, t, c, *out.shape[-2:]).transpose(1, 2)


class _AddZeroPaddedShortcut(torch.autograd.Function):
    """``h + F.pad(short, zero channels up to h's)``, AMDIM's shortcut where a block widens, as
    ``short`` added into the first channels of a copy of ``h`` in the sum's dtype: the same numbers
    bit for bit (tested), without the zero-padded copy of ``short`` and with the add over its
    channels only. ``short``'s gradient is the gradient's first channels, copied out in ``short``'s
    layout; ``h``'s is the gradient in ``h``'s dtype, as autograd hands it to an add's inputs."""

    @staticmethod
    def forward(ctx, h, short):
        ctx.h_dtype, ctx.short_dtype, ctx.short_channels = h.dtype, short.dtype, short.shape[1]
        ctx.short_format = torch.channels_last_3d if is_channels_last_3d(short) else torch.contiguous_format
        out = h.to(torch.promote_types(h.dtype, short.dtype), copy=True)
        out[:, :ctx.short_channels] += short
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grad_short = grad[:, :ctx.short_channels].to(ctx.short_dtype, memory_format=ctx.short_format)
        return grad.to(ctx.h_dtype), grad_short


class CopyingZeroPaddedShortcutSum(ZeroPaddedShortcutSum):
    """:class:`encoders.vdim.ZeroPaddedShortcutSum` as :class:`_AddZeroPaddedShortcut` in eager mode;
    under ``torch.compile`` the plain pad, which inductor fuses into the add."""

    def forward(self, h, short):
        if torch.compiler.is_compiling():
            return super().forward(h, short)
        return _AddZeroPaddedShortcut.apply(h, short)


def convert_to_channels_last_routes(module: nn.Module) -> nn.Module:
    """Every plain module of ``module`` that has a channels-last CPU route, in place and keeping its
    parameters (so state-dict keys and checkpoints are unchanged): a reflect-padded ``nn.Conv3d`` to
    :class:`ReflectPadConv3d`, an unpadded one to :class:`MatmulConv3d`, ``nn.AvgPool3d`` to
    :class:`LayoutKeepingAvgPool3d`, the widening shortcut sum to
    :class:`CopyingZeroPaddedShortcutSum`. Returns ``module``."""
    for m in module.modules():
        kind = type(m)
        if kind is nn.Conv3d and m.padding_mode == "reflect":
            m.__class__ = ReflectPadConv3d
        elif kind is nn.Conv3d and m.padding == (0, 0, 0):
            m.__class__ = MatmulConv3d
        elif kind is nn.AvgPool3d:
            m.__class__ = LayoutKeepingAvgPool3d
            m.plan_routes()
        elif kind is ZeroPaddedShortcutSum:
            m.__class__ = CopyingZeroPaddedShortcutSum
    return module
