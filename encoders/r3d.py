"""3-D ResNet-18 (Tara et al. 2018, "A closer look at spatiotemporal convolutions", R3D-18),
torchvision's ``torchvision.models.video.r3d_18`` without its classifier, behind the feature-map
interface: ``stem`` (3x7x7 conv, stride (1, 2, 2)), ``layer1`` .. ``layer4`` (two 3x3x3 basic
blocks each, widths 64/128/256/512, stride 2 in time and space from ``layer2``), ``"global"``
the pooled ``layer4`` (512-d). A 16x112x112 clip gives ``layer3`` ``[B, 256, 4, 14, 14]`` and
``layer4`` ``[B, 512, 2, 7, 7]``. No weights are downloaded.
"""
from __future__ import annotations

from collections import OrderedDict

from encoders.feature_encoder import FeatureEncoder, GlobalAvgPool


def build_r3d_18(name: str = "r3d_18", frames: int = 16, size: int = 112, **_) -> FeatureEncoder:
    from torchvision.models.video import r3d_18
    net = r3d_18(weights=None)
    stages = OrderedDict((k, getattr(net, k)) for k in ("stem", "layer1", "layer2", "layer3", "layer4"))
    return FeatureEncoder(name, stages, GlobalAvgPool(), 512, (frames, size, size))
