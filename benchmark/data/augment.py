"""Per-clip augmentation on whole clips as tensors: one parameter draw per clip or view
(colour and grey optionally per frame, ``augment.color_per=frame``, as DPC draws them).

torchvision's v2 transforms draw their parameters once per call and apply them to every
leading index, so a ``[T, 3, H, W]`` clip gets the same crop, flip, colour change and
rotation on every frame (VDIM sec. 3.1 step 4; Feichtenhofer et al. sec. 3), and two calls
give two views with independent parameters. Lab dropout (VDIM sec. 3.1) converts RGB to
CIE Lab and zeroes one randomly chosen channel.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

MEAN = torch.tensor([0.45, 0.45, 0.45]).view(3, 1, 1, 1)  # PyTorchVideo's Kinetics statistics
STD = torch.tensor([0.225, 0.225, 0.225]).view(3, 1, 1, 1)
COLOR_CHOICES = ("jitter", "lab_dropout", "none")
GRAYSCALE_CHOICES = ("luma", "channel")
COLOR_PER_CHOICES = ("clip", "frame")
CROP_CHOICES = ("resized", "scale_jitter")
ORDER_CHOICES = ("crop_first", "colour_first")
FLIP_PER_CHOICES = ("view", "sample")
JITTER_IMPLS = ("affine", "torchvision")
LUMA = torch.tensor([0.2989, 0.587, 0.114])  # torchvision's rgb_to_grayscale (ITU-R 601)
LUMA64 = LUMA.double().numpy()


def hue_rotation(h: float) -> np.ndarray:
    """The 3x3 RGB map that turns hue by ``h`` of a full turn: a rotation by ``2 pi h`` about the
    grey axis (1, 1, 1) of the RGB cube (Rodrigues' formula). It keeps grey grey and turns the hue
    hexagon of HSV by exactly ``h`` at multiples of 1/6 (red -> green at 1/3); torchvision shifts
    the H of HSV instead, which is not linear, and in between the two differ by less than the
    shift itself (``tests/test_augment.py`` bounds it). float64."""
    c, s = math.cos(2 * math.pi * h), math.sin(2 * math.pi * h)
    cross = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / math.sqrt(3)
    return c * np.eye(3) + (1 - c) / 3 + s * cross


def colour_jitter_maps(order, factors) -> Tuple[np.ndarray, np.ndarray]:
    """One clip's colour jitter as ``x -> M x + P mean_t`` (see :class:`AffineColorJitter`), float64.

    ``order``: the adjustments (0 brightness, 1 contrast, 2 saturation, 3 hue) in the order the
    clip applies them; ``factors``: each adjustment's factor (hue: the turn). ``mean_t`` is frame
    t's mean colour before the jitter: contrast blends towards the current mean grey, which is
    linear in it, so every offset is ``P mean_t`` for one 3x3 ``P``, and the maps depend on the
    draws alone, not on the pixels (a few 3x3 products instead of tensor ops per clip)."""
    m, p = np.eye(3), np.zeros((3, 3))
    for op in order:
        f = float(factors[op])
        if op == 0:                      # brightness: x * f
            m, p = f * m, f * p
        elif op == 1:                    # contrast: f x + (1 - f) mean grey of the frame
            m, p = f * m, f * p + (1 - f) * np.outer(np.ones(3), LUMA64 @ (m + p))
        else:                            # saturation (blend with grey) and hue (turn): x -> a x
            a = f * np.eye(3) + (1 - f) * np.outer(np.ones(3), LUMA64) if op == 2 else hue_rotation(f)
            m, p = a @ m, a @ p
    return m, p


def affine_colour_maps(order, factors) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`colour_jitter_maps` of ``B`` clips: ``order`` and ``factors`` ``[B, 4]``; returns float32
    ``M [B, 3, 3]`` and ``P [B, 3, 3]`` on the CPU."""
    maps = [colour_jitter_maps(o, f) for o, f in zip(np.asarray(order).tolist(), np.asarray(factors).tolist())]
    return tuple(torch.from_numpy(np.stack(x)).float() for x in zip(*maps))


def apply_colour_maps(x: torch.Tensor, m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``x``: ``[B, 3, T, H, W]`` in [0, 1]; ``m``, ``p`` ``[B, 3, 3]`` from
    :func:`affine_colour_maps`: ``M x + P mean_t`` per frame, clamped to [0, 1] once."""
    m, p = m.to(x.device, x.dtype), p.to(x.device, x.dtype)
    offset = torch.einsum("bij,bjt->bit", p, x.mean(dim=(-2, -1)))             # [B, 3, T]
    out = torch.einsum("bij,bjthw->bithw", m, x) + offset[..., None, None]
    return out.clamp_(0, 1)


def jitter_ranges(brightness: float, contrast: float, saturation: float, hue: float):
    """``(low, high)`` of each adjustment's factor, in the order brightness, contrast, saturation,
    hue, as torchvision's ``ColorJitter`` draws them."""
    return [(max(0.0, 1 - brightness), 1 + brightness), (max(0.0, 1 - contrast), 1 + contrast),
            (max(0.0, 1 - saturation), 1 + saturation), (-hue, hue)]


class AffineColorJitter(torch.nn.Module):
    """torchvision's ``ColorJitter`` (brightness, contrast, saturation, hue; factors drawn the same
    way, applied in a random order) as one affine colour map per clip: each adjustment is affine
    in RGB, so their composition is ``x -> M x + P mean_t`` with 3x3 ``M`` and ``P``, the second for
    contrast's blend with frame t's mean grey (:func:`colour_jitter_maps`). The whole clip then costs one 3x3
    matrix product instead of torchvision's per-pixel HSV round trip for hue (the perf suite's
    data section measures both). Differences: hue turns about the grey axis
    (:func:`hue_rotation`), and values are clamped to [0, 1] once at the end instead of after
    every adjustment. ``augment.jitter_impl=torchvision`` restores torchvision's.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float):
        super().__init__()
        self.ranges = jitter_ranges(brightness, contrast, saturation, hue)

    def draw(self):
        """Adjustment order and factors, from torch's RNG as torchvision draws them."""
        order = torch.randperm(4).tolist()
        factors = [float(torch.empty(1).uniform_(lo, hi)) if hi > lo else lo for lo, hi in self.ranges]
        return order, factors

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # [T, 3, H, W], uint8 or float in [0, 1]
        x = clip.float() / 255 if clip.dtype == torch.uint8 else clip
        order, factors = self.draw()
        m, p = affine_colour_maps([order], [factors])
        return apply_colour_maps(x.transpose(0, 1)[None], m, p)[0].transpose(0, 1)


def color_jitter(aug) -> torch.nn.Module:
    if aug.jitter_impl not in JITTER_IMPLS:
        from benchmark.errors import unknown_choice
        raise unknown_choice("augment.jitter_impl", aug.jitter_impl, JITTER_IMPLS)
    cls = AffineColorJitter if aug.jitter_impl == "affine" else v2.ColorJitter
    return cls(aug.brightness, aug.contrast, aug.saturation, aug.hue)


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
    centre, scale = (torch.tensor(v, device=clip.device).view(3, 1, 1) for v in ([50.0, 0.0, 0.0], [50.0, 110.0, 110.0]))
    return (lab - centre) / scale


class LabDropout(torch.nn.Module):
    """RGB -> Lab, then one of the three channels set to zero (scaled to about [-1, 1])."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # [T, 3, H, W] float in [0, 1]
        lab = scaled_lab(clip)
        drop = int(torch.randint(0, 3, ()))
        lab[:, drop] = 0
        return lab


def check_augment_choices(aug, prefix: str = "augment") -> None:
    """Every named choice of an ``AugmentConfig`` is one of its valid ones (one line naming
    ``prefix.key`` if not)."""
    from benchmark.errors import UserError, unknown_choice
    for key, choices in (("color", COLOR_CHOICES), ("grayscale", GRAYSCALE_CHOICES), ("color_per", COLOR_PER_CHOICES),
                         ("crop", CROP_CHOICES), ("order", ORDER_CHOICES), ("flip_per", FLIP_PER_CHOICES)):
        if getattr(aug, key) not in choices:
            raise unknown_choice(f"{prefix}.{key}", getattr(aug, key), choices)
    lo, hi = (list(aug.scale_jitter) + [0, 0])[:2]
    if aug.crop == "scale_jitter" and not (len(aug.scale_jitter) == 2 and aug.crop_size <= lo <= hi):
        raise UserError(f"bad {prefix}.scale_jitter {list(aug.scale_jitter)}: need [min, max] short sides with "
                        f"crop_size {aug.crop_size} <= min <= max, e.g. [256, 320] for 224")


class ChannelGrayscale(torch.nn.Module):
    """With probability ``p``, one RGB channel (drawn uniformly) copied to all three: DPC's
    ``RandomGray`` ("actually a channel splitting", ``utils/augmentation.py``)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # [T, 3, H, W]
        if float(torch.rand(())) >= self.p:
            return clip
        c = int(torch.randint(0, 3, ()))
        return clip[:, c:c + 1].expand_as(clip).clone()


def grayscale_op(aug) -> torch.nn.Module:
    return ChannelGrayscale(aug.grayscale_p) if aug.grayscale == "channel" else v2.RandomGrayscale(aug.grayscale_p)


class PerFrame(torch.nn.Module):
    """``op`` applied to each frame of a ``[T, 3, H, W]`` clip on its own, so that each frame draws
    its own parameters (DPC's colour jitter and grey, ``consistent=False``); float in [0, 1] out."""

    def __init__(self, op: torch.nn.Module):
        super().__init__()
        self.op = op

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = clip.float() / 255 if clip.dtype == torch.uint8 else clip
        return torch.cat([self.op(x[t:t + 1]) for t in range(x.shape[0])])


def colour_ops(aug) -> list:
    """Colour jitter (with probability ``jitter_p``) then grey (``grayscale_p``), drawn once per
    clip or, with ``augment.color_per=frame``, once per frame."""
    ops = [v2.RandomApply([color_jitter(aug)], p=aug.jitter_p), grayscale_op(aug)]
    return [PerFrame(v2.Compose(ops))] if aug.color_per == "frame" else ops


def crop_op(aug, size: int) -> torch.nn.Module:
    """``augment.crop``: a random resized crop (area ``crop_area``, aspect ``crop_ratio``) or, with
    ``scale_jitter``, the short side resized to a size uniform in ``scale_jitter`` and a random
    ``size`` square cut from it (SlowFast's ``random_short_side_scale_jitter`` and ``random_crop``,
    ``slowfast/datasets/transform.py``, used where a config sets ``TRAIN_JITTER_SCALES``)."""
    if aug.crop == "scale_jitter":
        lo, hi = aug.scale_jitter
        return v2.Compose([v2.RandomResize(int(lo), int(hi) + 1, antialias=True), v2.RandomCrop(size)])
    return v2.RandomResizedCrop(size, scale=tuple(aug.crop_area), ratio=tuple(aug.crop_ratio), antialias=True)


def spatial_ops(aug, size: int) -> list:
    """Crop, flip and rotation: the part of a clip's augmentation that moves pixels. With
    ``augment.flip_per=sample`` the flip is the view function's, one draw per sample
    (:class:`benchmark.data.pipeline.SampleFlip`)."""
    ops = [crop_op(aug, size)]
    if aug.flip_p > 0 and aug.flip_per == "view":
        ops.append(v2.RandomHorizontalFlip(aug.flip_p))
    if aug.rotation_degrees > 0:
        ops.append(v2.RandomRotation(aug.rotation_degrees))
    return ops


def blur_kernel_size(size: int) -> int:
    """Gaussian blur's kernel: about a tenth of the crop, odd, at least 3 (SimCLR appendix A)."""
    return max(3, (size // 10) | 1)


def sigma_kernel_size(sigma_max: float) -> int:
    """A kernel that holds a Gaussian of ``sigma_max`` to 3 sigma either side: the blur of a frame
    before its crop, whose size is not known in advance; SlowFast blurs with PIL's
    ``GaussianBlur(radius=sigma)``, whose extent is about 3 sigma."""
    return 2 * math.ceil(3 * sigma_max) + 1


def gaussian_blur_clips(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur every frame of clip ``n`` of ``x [N, C, T, H, W]`` with a Gaussian of ``sigma[n]``:
    torchvision's ``gaussian_blur`` (same kernel, reflect padding), as two 1-D depthwise passes."""
    n, c, t, h, w = x.shape
    half = (kernel_size - 1) / 2
    taps = torch.linspace(-half, half, kernel_size, device=x.device, dtype=torch.float32)
    g = torch.exp(-0.5 * (taps / sigma.to(x.device, torch.float32)[:, None]) ** 2)
    g = (g / g.sum(dim=1, keepdim=True)).to(x.dtype).repeat_interleave(c * t, dim=0)  # one kernel per plane
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c * t, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, g[:, None, None, :], groups=n * c * t)  # along the width
    y = F.conv2d(y, g[:, None, :, None], groups=n * c * t)  # along the height
    return y.reshape(n, c, t, h, w)


class ClipGaussianBlur(torch.nn.Module):
    """torchvision's ``GaussianBlur`` for a ``[T, 3, H, W]`` clip (sigma drawn as it draws it, one
    per clip; same kernel and reflect padding; a ``uint8`` clip is rounded back to ``uint8`` as it
    does), blurred by :func:`gaussian_blur_clips` in two 1-D passes instead of one 2-D one: 2k
    instead of k^2 multiply-adds a pixel."""

    def __init__(self, kernel_size: int, sigma):
        super().__init__()
        self.kernel_size, self.sigma = kernel_size, tuple(sigma)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        sigma = torch.empty(1).uniform_(self.sigma[0], self.sigma[1])
        y = gaussian_blur_clips(clip[None].float(), sigma, self.kernel_size)[0]
        return y.round_().to(clip.dtype) if clip.dtype == torch.uint8 else y


def pixel_ops(aug, blur_kernel: int) -> list:
    """Colour jitter and grey (``augment.color=jitter``), then Gaussian blur (``blur_p``): the part
    of a clip's augmentation that changes pixels in place."""
    ops = colour_ops(aug) if aug.color == "jitter" else []
    if aug.blur_p > 0:
        ops.append(v2.RandomApply([ClipGaussianBlur(blur_kernel, aug.blur_sigma)], p=aug.blur_p))
    return ops


def build_clip_augment(aug, crop_size: Optional[int] = None) -> v2.Compose:
    """The training augmentation of one clip, from an ``AugmentConfig``. ``augment.order``:
    ``crop_first`` colours and blurs the crop (a blur kernel a tenth of it); ``colour_first`` the
    decoded frames before the crop, as SlowFast's ``kinetics.py`` calls ``color_jitter_video_ssl``
    before ``spatial_sampling``: the blur's sigma is then in the source's pixels, and contrast
    blends towards the whole frame's mean grey."""
    check_augment_choices(aug)
    size = crop_size or aug.crop_size
    if aug.order == "colour_first":
        ops = pixel_ops(aug, sigma_kernel_size(max(aug.blur_sigma))) + spatial_ops(aug, size)
    else:
        ops = spatial_ops(aug, size) + pixel_ops(aug, blur_kernel_size(size))
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
