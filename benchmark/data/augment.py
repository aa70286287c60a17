"""Per-clip augmentation on whole clips as tensors: one parameter draw per clip or view.

torchvision's v2 transforms draw their parameters once per call and apply them to every
leading index, so a ``[T, 3, H, W]`` clip gets the same crop, flip, colour change and
rotation on every frame (VDIM sec. 3.1 step 4; Feichtenhofer et al. sec. 3), and two calls
give two views with independent parameters. Lab dropout (VDIM sec. 3.1) converts RGB to
CIE Lab and zeroes one randomly chosen channel.
"""
from __future__ import annotations

from typing import Optional

import torch
from torchvision.transforms import v2

MEAN = torch.tensor([0.45, 0.45, 0.45]).view(3, 1, 1, 1)  # PyTorchVideo's Kinetics statistics
STD = torch.tensor([0.225, 0.225, 0.225]).view(3, 1, 1, 1)
COLOR_CHOICES = ("jitter", "lab_dropout", "none")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels on dim -3, to CIE Lab (D65): L in [0, 100], a/b about [-110, 110]."""
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423],
                      [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,...jhw->...ihw", m, lin)
    xyz = xyz / torch.tensor([0.950456, 1.0, 1.088754], dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    L = 116 * f[..., 1, :, :] - 16
    a = 500 * (f[..., 0, :, :] - f[..., 1, :, :])
    b = 200 * (f[..., 1, :, :] - f[..., 2, :, :])
    return torch.stack([L, a, b], dim=-3)


def scaled_lab(clip: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to Lab scaled to about [-1, 1] per channel."""
    lab = rgb_to_lab(clip)
    return (lab - torch.tensor([50.0, 0.0, 0.0]).view(3, 1, 1)) / torch.tensor([50.0, 110.0, 110.0]).view(3, 1, 1)


class LabDropout(torch.nn.Module):
    """RGB -> Lab, then one of the three channels set to zero (scaled to about [-1, 1])."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # [T, 3, H, W] float in [0, 1]
        lab = scaled_lab(clip)
        drop = int(torch.randint(0, 3, ()))
        lab[:, drop] = 0
        return lab


def build_clip_augment(aug, crop_size: Optional[int] = None) -> v2.Compose:
    """The training augmentation of one clip, from an ``AugmentConfig``."""
    if aug.color not in COLOR_CHOICES:
        from benchmark.errors import unknown_choice
        raise unknown_choice("augment.color", aug.color, COLOR_CHOICES)
    size = crop_size or aug.crop_size
    ops = [v2.RandomResizedCrop(size, scale=tuple(aug.crop_area), ratio=tuple(aug.crop_ratio), antialias=True)]
    if aug.flip_p > 0:
        ops.append(v2.RandomHorizontalFlip(aug.flip_p))
    if aug.rotation_degrees > 0:
        ops.append(v2.RandomRotation(aug.rotation_degrees))
    if aug.color == "jitter":
        ops.append(v2.RandomApply([v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)], p=aug.jitter_p))
        ops.append(v2.RandomGrayscale(aug.grayscale_p))
    if aug.blur_p > 0:
        k = max(3, (size // 10) | 1)
        ops.append(v2.RandomApply([v2.GaussianBlur(k, sigma=tuple(aug.blur_sigma))], p=aug.blur_p))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    if aug.color == "lab_dropout":
        ops.append(LabDropout())
    return v2.Compose(ops)


def build_eval_transform(size: int, color: str = "none", crop: int = 1, crops: int = 1) -> v2.Compose:
    """Test-time transform: short side to ``size``, then crop ``crop`` of ``crops``
    (left/centre/right along the long side for 3 crops, SlowFast's "x 3 crops")."""
    ops = [v2.Resize(size, antialias=True), SpatialCrop(size, crop, crops), v2.ToDtype(torch.float32, scale=True)]
    if color == "lab_dropout":
        ops.append(LabNoDrop())
    return v2.Compose(ops)


class LabNoDrop(torch.nn.Module):
    """Lab conversion without dropping a channel: the test-time twin of :class:`LabDropout`."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return scaled_lab(clip)


class SpatialCrop(torch.nn.Module):
    """Crop ``index`` of ``count`` evenly spaced square crops along the longer side."""

    def __init__(self, size: int, index: int = 0, count: int = 1):
        super().__init__()
        self.size, self.index, self.count = size, index, count

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2:]
        pos = 0.5 if self.count == 1 else self.index / (self.count - 1)
        top = int(round((h - self.size) * (pos if h > w else 0.5)))
        left = int(round((w - self.size) * (pos if w >= h else 0.5)))
        return clip[..., top:top + self.size, left:left + self.size]


def to_model_input(clip: torch.Tensor, color: str) -> torch.Tensor:
    """``[T, 3, H, W]`` float -> normalised ``[3, T, H, W]`` (Lab clips are already scaled)."""
    clip = clip.permute(1, 0, 2, 3).contiguous()
    return clip if color == "lab_dropout" else (clip - MEAN) / STD
