"""PyTorchVideo backbones behind the feature-map interface: Slow R-50, R(2+1)D-18, X3D-S.

Each builder returns the backbone's stages by name (``stem``, ``res2`` .. ``res5``) and a
global head; :class:`encoders.feature_encoder.FeatureEncoder` runs them. No weights are
downloaded.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from benchmark import compat  # noqa: F401  (pytorchvideo import alias)
from encoders.feature_encoder import FeatureEncoder, GlobalAvgPool

STAGE_NAMES = ["stem", "res2", "res3", "res4", "res5"]


def _stages(blocks) -> "OrderedDict[str, nn.Module]":
    return OrderedDict(zip(STAGE_NAMES, blocks))


def build_slow_r50(name="slow_r50", frames=8, size=224, **_) -> FeatureEncoder:
    """Slow R-50 (Feichtenhofer et al. 2021): ``create_resnet(stem_conv_kernel_size=(1,7,7),
    head_pool_kernel_size=(8,7,7), model_depth=50)``; global = pooled res5 (2048-d)."""
    from pytorchvideo.models.resnet import create_resnet

    net = create_resnet(input_channel=3, model_depth=50, model_num_class=400, norm=nn.BatchNorm3d,
                        activation=nn.ReLU, stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(8, 7, 7))
    return FeatureEncoder(name, _stages(net.blocks[:5]), GlobalAvgPool(), 2048, (frames, size, size))


def tran_mid_channels(c_in: int, c_out: int, t: int = 3, d: int = 3) -> int:
    """Tran et al. 2018 (sec. 3.5): M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out)) keeps
    a (2+1)D conv's parameter count equal to the full 3-D conv's."""
    return (t * d * d * c_in * c_out) // (d * d * c_in + t * c_out)


class BasicBlock2plus1d(nn.Module):
    """ResNet basic block with both 3x3x3 convs factorised into (2+1)D (conv_xy_first)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        from pytorchvideo.layers.convolutions import create_conv_2plus1d

        def conv(ci, co, s):
            return create_conv_2plus1d(in_channels=ci, out_channels=co, inner_channels=tran_mid_channels(ci, co),
                                       conv_xy_first=True, kernel_size=(3, 3, 3), stride=(s, s, s), padding=(1, 1, 1))

        self.branch = nn.Sequential(conv(c_in, c_out, stride), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True),
                                    conv(c_out, c_out, 1), nn.BatchNorm3d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv3d(c_in, c_out, 1, (stride,) * 3, bias=False), nn.BatchNorm3d(c_out)))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.branch(x) + self.shortcut(x))


def build_r2plus1d_r18(name="r2plus1d_r18", frames=16, size=112, **_) -> FeatureEncoder:
    """R(2+1)D-18 (Tran et al. 2018, Table 1): (2+1)D stem 3 -> 45 -> 64, four stages of two
    basic blocks (64, 128, 256, 512), stride 2 in time and space from res3 on."""
    from pytorchvideo.layers.convolutions import create_conv_2plus1d

    stem = nn.Sequential(
        create_conv_2plus1d(in_channels=3, out_channels=64, inner_channels=45, conv_xy_first=True,
                            kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
        nn.BatchNorm3d(64), nn.ReLU(inplace=True))
    widths, blocks, c_in = [64, 128, 256, 512], [stem], 64
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        blocks.append(nn.Sequential(BasicBlock2plus1d(c_in, w, stride), BasicBlock2plus1d(w, w, 1)))
        c_in = w
    return FeatureEncoder(name, _stages(blocks), GlobalAvgPool(), 512, (frames, size, size))


class X3DGlobal(nn.Module):
    """X3D's projected pool without the classifier: conv 192 -> 432, pool, conv 432 -> 2048."""

    def __init__(self, projected_pool: nn.Module):
        super().__init__()
        p = projected_pool
        self.pre = nn.Sequential(p.pre_conv, p.pre_norm, p.pre_act)
        self.post = nn.Sequential(p.post_conv, p.post_act)

    def forward(self, x):
        return self.post(self.pre(x).mean(dim=(2, 3, 4), keepdim=True)).flatten(1)


def build_x3d_s(name="x3d_s", frames=13, size=160, **_) -> FeatureEncoder:
    """X3D-S (Feichtenhofer 2020): ``create_x3d(input_clip_length=13, input_crop_size=160,
    depth_factor=2.2)``; global = the projected-pool features (2048-d)."""
    from pytorchvideo.models.x3d import create_x3d

    net = create_x3d(input_clip_length=frames, input_crop_size=size, depth_factor=2.2, model_num_class=400)
    return FeatureEncoder(name, _stages(net.blocks[:5]), X3DGlobal(net.blocks[5].pool), 2048, (frames, size, size))
