"""DPC's 2D-3D ResNets (Han, Xie and Zisserman 2019; official code TengdaHan/DPC,
``backbone/resnet_2d3d.py``: ``resnet18_2d3d_full``, ``resnet34_2d3d_full``).

* stem: Conv3d 1x7x7 stride (1, 2, 2) padding (0, 3, 3) -> BN -> ReLU -> MaxPool3d 1x3x3
  stride (1, 2, 2) padding (0, 1, 1);
* ``layer1`` and ``layer2``: 2-D basic blocks (two 1x3x3 convolutions), widths 64 and 128;
* ``layer3`` and ``layer4``: 3-D basic blocks (two 3x3x3 convolutions; the first block of each
  strides by 2 in time as well), widths 256 and 256 (the official code cuts layer4 from 512);
* shortcut type B (1x1x1 convolution + BN where the shape changes); no ReLU after the last block;
* ``[2, 2, 2, 2]`` blocks (R18, 14.06M parameters) or ``[3, 4, 6, 3]`` (R34, 32.42M).

Weights are initialised as the official code does (Kaiming normal, fan-out; BN weight 1, bias 0).
``track_running_stats=False`` is DPC's pretraining choice (every BN uses the batch's statistics,
also in evaluation); its author reports that True works better, so it is an option. A 5 x 128 x
128 block gives ``layer4`` of ``[B, 256, 2, 4, 4]``; ``"global"`` is its average (256-d).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List

from torch import nn

from encoders.feature_encoder import FeatureEncoder, GlobalAvgPool

DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}
WIDTHS = [64, 128, 256, 256]


class BasicBlock(nn.Module):
    """Two convolutions of ``kernel`` (1x3x3: 2-D; 3x3x3: 3-D) with BN, a residual sum, and a final
    ReLU unless it is the network's last block."""

    def __init__(self, c_in: int, c_out: int, temporal: bool, stride: int, final_relu: bool, track: bool):
        super().__init__()
        kernel, pad = ((3, 3, 3), (1, 1, 1)) if temporal else ((1, 3, 3), (0, 1, 1))
        strides = (stride, stride, stride) if temporal else (1, stride, stride)
        self.conv1 = nn.Conv3d(c_in, c_out, kernel, strides, pad, bias=False)
        self.bn1 = nn.BatchNorm3d(c_out, track_running_stats=track)
        self.conv2 = nn.Conv3d(c_out, c_out, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm3d(c_out, track_running_stats=track)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv3d(c_in, c_out, 1, strides, bias=False),
                                            nn.BatchNorm3d(c_out, track_running_stats=track))
        self.final_relu = final_relu

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out) if self.final_relu else out


def layer(c_in: int, c_out: int, blocks: int, temporal: bool, stride: int, last: bool, track: bool) -> nn.Sequential:
    mods: List[nn.Module] = []
    for i in range(blocks):
        mods.append(BasicBlock(c_in if i == 0 else c_out, c_out, temporal, stride if i == 0 else 1,
                               final_relu=not (last and i == blocks - 1), track=track))
    return nn.Sequential(*mods)


def build_r2d3d(name: str = "r2d3d_18", depth: int = 18, frames: int = 5, size: int = 128,
                track_running_stats: bool = True, **_) -> FeatureEncoder:
    if depth not in DEPTHS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("encoder.depth", depth, DEPTHS)
    track = track_running_stats
    stages = OrderedDict(stem=nn.Sequential(
        nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(64, track_running_stats=track),
        nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))))
    c_in = 64
    for i, (blocks, width) in enumerate(zip(DEPTHS[depth], WIDTHS)):
        stages[f"layer{i + 1}"] = layer(c_in, width, blocks, temporal=i >= 2, stride=1 if i == 0 else 2, last=i == 3,
                                        track=track)
        c_in = width
    encoder = FeatureEncoder(name, stages, GlobalAvgPool(), c_in, (frames, size, size))
    for m in encoder.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return encoder
