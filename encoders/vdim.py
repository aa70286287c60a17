"""The VDIM encoder: paper sec. 3.2, Table 1 and Figure 2 (Hjelm & Bachman 2020).

AMDIM's encoder (Bachman et al. 2019) with every spatial k x k convolution followed by a
1-D temporal convolution, R(2+1)D style, in place of AMDIM's 1x1 (Figure 2a). Blocks:

* ``ConvBlock``: spatial conv (1, k, k) -> BN -> ReLU -> temporal conv (kt, 1, 1) -> BN -> ReLU
  (``block_bn=False``: no BN inside any block, as Table 1 and AMDIM's ``use_bn=0``).
* ``ResBlock(..., n)`` (Figure 2b): one residual block, spatial conv -> BN -> ReLU ->
  temporal conv (zero-initialised), with an average-pooling shortcut of the same
  kernel/stride (zero-padded in channels when widening) and no ReLU after the add; then
  ``n`` residual 1x1x1 blocks (two 1x1x1 convs each) that deepen the net without growing
  receptive fields, so features stay local until the last blocks.

Table 1 writes blocks as ``ResBlock(a, b, c, d, n)``; its sizes fix the kernels and
strides, which are what :data:`TABLE1` lists: for a 3 x 32 x 128 x 128 input the maps are
64x16x64x64, 64x14x62x62, 128x14x30x30, 256x14x14x14, 512x7x7x7, 512x5x5x5, 512x3x3x3,
512x1x1x1 (checked by the tests, computed, not hard-coded).

``"global"`` is phi_8 o Psi: the residual-MLP head phi_8 applied to block 8 (sec. 4.1
evaluates with phi_8 o Psi). Parameters: Psi alone is about 16.5M; with phi_8 it is
about 17.3M, the figure the paper reports, so the count includes phi_8.

The model is built of ``nn.Conv3d``, ``nn.AvgPool3d`` and padding. Its channels-last CPU routes
(:mod:`encoders.channels_last_ops`) are a conversion that ``trainer.channels_last`` applies,
with the same state-dict keys and numbers; ``channels_last_routes`` below says this encoder
takes it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from encoders.feature_encoder import FeatureEncoder


@dataclass(frozen=True)
class BlockSpec:
    kind: str  # conv | res
    width: int  # multiple of ndf
    ks: int  # spatial kernel
    ss: int  # spatial stride
    kt: int  # temporal kernel
    st: int  # temporal stride
    n: int = 0  # residual 1x1x1 blocks after a res block
    ps: int = 0  # spatial padding (reflect), first layer only
    pt: int = 0  # temporal padding (reflect), first layer only


TABLE1: List[BlockSpec] = [
    BlockSpec("conv", 1, 5, 2, 5, 2, ps=2, pt=2),  # 1: 64 x 16 x 64 x 64
    BlockSpec("conv", 1, 3, 1, 3, 1),              # 2: 64 x 14 x 62 x 62
    BlockSpec("res", 2, 4, 2, 1, 1, n=3),          # 3: 128 x 14 x 30 x 30
    BlockSpec("res", 4, 4, 2, 1, 1, n=3),          # 4: 256 x 14 x 14 x 14
    BlockSpec("res", 8, 2, 2, 2, 2, n=3),          # 5: 512 x 7 x 7 x 7   (local view 1)
    BlockSpec("res", 8, 3, 1, 3, 1, n=3),          # 6: 512 x 5 x 5 x 5   (local view 2)
    BlockSpec("res", 8, 3, 1, 3, 1, n=3),          # 7: 512 x 3 x 3 x 3
    BlockSpec("res", 8, 3, 1, 3, 1, n=0),          # 8: 512 x 1 x 1 x 1   (global view)
]

# CPU-sized: the same eight blocks for a 16 x 64 x 64 input. Block 1 keeps time (kt 3,
# stride 1) and block 4 is 1x1 spatially, so blocks 5-8 keep Table 1's 7, 5, 3, 1 grid.
SMALL: List[BlockSpec] = [
    BlockSpec("conv", 1, 5, 2, 3, 1, ps=2, pt=1),  # 1: 16 x 32 x 32
    BlockSpec("conv", 1, 3, 1, 3, 1),              # 2: 14 x 30 x 30
    BlockSpec("res", 2, 4, 2, 1, 1, n=3),          # 3: 14 x 14 x 14
    BlockSpec("res", 4, 1, 1, 1, 1, n=3),          # 4: 14 x 14 x 14
    BlockSpec("res", 8, 2, 2, 2, 2, n=3),          # 5: 7 x 7 x 7
    BlockSpec("res", 8, 3, 1, 3, 1, n=3),          # 6: 5 x 5 x 5
    BlockSpec("res", 8, 3, 1, 3, 1, n=3),          # 7: 3 x 3 x 3
    BlockSpec("res", 8, 3, 1, 3, 1, n=0),          # 8: 1 x 1 x 1
]
LAYOUTS = {"table1": TABLE1, "small": SMALL}


def bias_free_conv3d(c_in, c_out, kernel, stride, padding):
    """A bias-free ``nn.Conv3d``, reflect-padded where ``padding`` is not zero (VDIM's first layer)."""
    if any(padding):
        return nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=False, padding_mode="reflect")
    return nn.Conv3d(c_in, c_out, kernel, stride, bias=False)


def spatial_conv(c_in, c_out, k, s, pad=0):
    return bias_free_conv3d(c_in, c_out, (1, k, k), (1, s, s), (0, pad, pad))


def temporal_conv(c_in, c_out, k, s, pad=0):
    return bias_free_conv3d(c_in, c_out, (k, 1, 1), (s, 1, 1), (pad, 0, 0))


def block_norm(c: int, block_bn: bool) -> nn.Module:
    """The normalisation inside a block: BatchNorm, or none (``block_bn=False``: Table 1's
    ``ConvBlock(5,5,2,2,False)`` and AMDIM's ``use_bn=0``; the paper names BN only on the
    encoder's output and in the phi_j heads, sec. 4)."""
    return nn.BatchNorm3d(c) if block_bn else nn.Identity()


class ConvBlock(nn.Sequential):
    """Figure 2a: the R(2+1)D basic block."""

    def __init__(self, c_in, c_out, spec: BlockSpec, block_bn: bool = True):
        super().__init__(spatial_conv(c_in, c_out, spec.ks, spec.ss, spec.ps), block_norm(c_out, block_bn),
                         nn.ReLU(inplace=True), temporal_conv(c_out, c_out, spec.kt, spec.st, spec.pt),
                         block_norm(c_out, block_bn), nn.ReLU(inplace=True))


class ResNxN(nn.Module):
    """Figure 2b: AMDIM's residual NxN block with the 1x1 after the spatial conv made temporal, and an
    average-pooling shortcut (zero-padded in channels where the block widens)."""

    def __init__(self, c_in, c_out, spec: BlockSpec, block_bn: bool = True):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.spatial = spatial_conv(c_in, c_out, spec.ks, spec.ss)
        self.bn = block_norm(c_out, block_bn)
        self.temporal = temporal_conv(c_out, c_out, spec.kt, spec.st)
        nn.init.zeros_(self.temporal.weight)
        kernel, stride = (spec.kt, spec.ks, spec.ks), (spec.st, spec.ss, spec.ss)
        # a 1x1x1 pool of stride 1 is the identity (block 4 of the small layout): skipped
        self.pool = nn.Identity() if kernel == stride == (1, 1, 1) else nn.AvgPool3d(kernel, stride)
        self.add_shortcut = ShortcutSum() if c_out == c_in else ZeroPaddedShortcutSum()

    def forward(self, x):
        # Under CPU autocast avg_pool3d runs in fp32, so the sum and the residual stream after it
        # stay fp32, as autocast chooses.
        return self.add_shortcut(self.temporal(F.relu(self.bn(self.spatial(x)))), self.pool(x))


class ShortcutSum(nn.Module):
    """The residual sum ``h + shortcut`` of a block that keeps its width."""

    def forward(self, h, short):
        return h + short


class ZeroPaddedShortcutSum(nn.Module):
    """AMDIM's shortcut where a block widens: ``h`` plus the shortcut zero-padded in channels."""

    def forward(self, h, short):
        return h + F.pad(short, (0, 0, 0, 0, 0, 0, 0, h.shape[1] - short.shape[1]))


class Res1x1(nn.Module):
    """A residual 1x1x1 block: features deepen, receptive fields stay the same."""

    def __init__(self, c, block_bn: bool = True):
        super().__init__()
        self.conv1 = nn.Conv3d(c, c, 1, bias=False)
        self.bn = block_norm(c, block_bn)
        self.conv2 = nn.Conv3d(c, c, 1, bias=False)
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x):
        return x + self.conv2(F.relu(self.bn(self.conv1(x))))


def res_block(c_in, c_out, spec: BlockSpec, n: int, block_bn: bool = True) -> nn.Sequential:
    return nn.Sequential(ResNxN(c_in, c_out, spec, block_bn), *[Res1x1(c_out, block_bn) for _ in range(n)])


class LocalMLP(nn.Module):
    """phi_j, AMDIM's "MLP with residual" applied at every location with 1x1x1 convs (VDIM sec. 3.3).

    1x1 conv -> BN -> ReLU -> 1x1 conv (zero-init), plus a 1x1 shortcut initialised near
    identity, then an output BN. ``[B, C, T, H, W] -> [B, D, T, H, W]``.
    """

    def __init__(self, c_in: int, d_out: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or d_out
        self.conv1 = nn.Conv3d(c_in, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(hidden)
        self.conv2 = nn.Conv3d(hidden, d_out, 1, bias=False)
        nn.init.zeros_(self.conv2.weight)
        self.shortcut = nn.Conv3d(c_in, d_out, 1, bias=False)
        with torch.no_grad():
            eye = torch.zeros(d_out, c_in)
            eye[: min(d_out, c_in), : min(d_out, c_in)] = torch.eye(min(d_out, c_in))
            self.shortcut.weight.copy_(eye.view(d_out, c_in, 1, 1, 1) + 0.01 * torch.randn(d_out, c_in, 1, 1, 1))
        self.out_bn = nn.BatchNorm3d(d_out)

    def forward(self, x):
        return self.out_bn(self.shortcut(x) + self.conv2(F.relu(self.bn1(self.conv1(x)))))


class Phi8Global(nn.Module):
    """``"global"`` = phi_8 o Psi, flattened (block 8 is 1 x 1 x 1 at the design input)."""

    def __init__(self, c_in: int, d_out: int):
        super().__init__()
        self.phi = LocalMLP(c_in, d_out)

    def forward(self, x):
        return self.phi(x).mean(dim=(2, 3, 4))


def map_sizes(layout: List[BlockSpec], t: int, h: int):
    """Output (T, H) of every block; raises if a block would get an empty map."""
    sizes = []
    for i, s in enumerate(layout, 1):
        t = (t + 2 * s.pt - s.kt) // s.st + 1
        h = (h + 2 * s.ps - s.ks) // s.ss + 1
        if t < 1 or h < 1:
            return sizes, i
        sizes.append((t, h))
    return sizes, None


def build_vdim(name: str = "vdim", layout: str = "table1", frames: int = 32, size: int = 128, ndf: int = 64,
               n_1x1: Optional[int] = None, head_dim: int = 512, block_bn: bool = True, **_) -> FeatureEncoder:
    if layout not in LAYOUTS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("encoder.layout", layout, LAYOUTS)
    specs = LAYOUTS[layout]
    sizes, bad = map_sizes(specs, frames, size)
    if bad:
        from benchmark.errors import UserError
        raise UserError(f"encoder '{name}' cannot take a {frames} x {size} x {size} input: block{bad} gets an empty "
                        f"map (design input {'32 x 128 x 128' if layout == 'table1' else '16 x 64 x 64'})")
    stages = OrderedDict()
    c_in = 3
    for i, spec in enumerate(specs, 1):
        c_out = ndf * spec.width
        n = spec.n if n_1x1 is None or spec.n == 0 else n_1x1
        stages[f"block{i}"] = (ConvBlock(c_in, c_out, spec, block_bn) if spec.kind == "conv"
                               else res_block(c_in, c_out, spec, n, block_bn))
        c_in = c_out
    stages["block8"] = nn.Sequential(stages["block8"], nn.BatchNorm3d(c_in))  # BN on the encoder output (sec. 4)
    return FeatureEncoder(name, stages, Phi8Global(c_in, head_dim), head_dim, (frames, size, size), strict_input=True,
                          channels_last_routes=True)
