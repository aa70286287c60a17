"""Colour, grey, blur and normalisation of a whole batch on the training device
(``trainer.augment_on=device``).

With ``trainer.augment_on=workers`` (the default) the DataLoader workers run a clip's whole
augmentation (:func:`benchmark.data.augment.build_clip_augment`). With ``device`` they decode
and run only the spatial part (random resized crop, flip, rotation) and send ``uint8`` clips,
a quarter of float32's bytes; the trainer then applies the rest to each view's batch on the
GPU (or wherever the model is), where it costs a few elementwise passes instead of worker time.
That is the lever for machines with few CPU cores per GPU.

The augmentation is the same as the workers': per clip, one parameter draw (VDIM sec. 3.1
step 4; Feichtenhofer et al. sec. 3) with the same probabilities and ranges: colour jitter as
one affine map per clip (:func:`benchmark.data.augment.affine_colour_maps`, the workers'
``jitter_impl=affine``) with probability ``jitter_p``, grey with ``grayscale_p``, Gaussian blur
with ``blur_p`` and sigma uniform in ``blur_sigma`` (colour and grey per frame with
``augment.color_per=frame``), then Kinetics normalisation (or Lab
dropout). Differences: values stay float between the steps (the workers round to ``uint8``
when a step meets a ``uint8`` clip), and the draws come from a generator seeded by
``(seed, step, rank, view)`` (:func:`step_generator`), so a resumed run draws what an
uninterrupted one would.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.augment import (LUMA, MEAN, STD, affine_colour_maps, apply_colour_maps, blur_kernel_size,
                                    check_augment_choices, gaussian_blur_clips, jitter_ranges, scaled_lab)
from benchmark.errors import UserError, unknown_choice

AUGMENT_ON = ("workers", "device")


def check_augment_on(choice: str, aug=None) -> None:
    if choice not in AUGMENT_ON:
        raise unknown_choice("trainer.augment_on", choice, AUGMENT_ON)
    if choice == "device" and aug is not None and aug.color == "jitter" and aug.jitter_impl != "affine":
        raise UserError(f"trainer.augment_on=device applies colour jitter as affine maps; set "
                        f"augment.jitter_impl=affine (got {aug.jitter_impl})")
    if choice == "device" and aug is not None and aug.order != "crop_first":
        raise UserError(f"trainer.augment_on=device colours the cropped clips; augment.order={aug.order} "
                        "needs trainer.augment_on=workers (or augment.order=crop_first)")


def step_generator(seed: int, step: int, rank: int, view: int) -> torch.Generator:
    """A CPU generator for the draws of one view's batch at one step."""
    state = np.random.SeedSequence([int(seed), 2, int(step), int(rank), int(view)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


class BatchClipAugment(torch.nn.Module):
    """The non-spatial augmentation of ``AugmentConfig`` ``aug`` on ``uint8 [B, 3, T, H, W]`` clips
    (``size``: the crop, which sets the blur kernel), to the model's normalised float input."""

    def __init__(self, aug, size: int):
        super().__init__()
        check_augment_choices(aug)
        check_augment_on("device", aug)
        self.aug, self.kernel = aug, blur_kernel_size(size)
        self.ranges = torch.tensor(jitter_ranges(aug.brightness, aug.contrast, aug.saturation, aug.hue))

    def draw(self, b: int, generator: torch.Generator, frames: int = 1) -> dict:
        """Each clip's parameters, as the workers' transforms draw them per clip; with
        ``augment.color_per=frame`` the colour and grey draws are per frame (``b * frames`` of them,
        clip-major)."""
        a, u = self.aug, lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        lo, hi = self.ranges[:, 0], self.ranges[:, 1]
        n = b * (frames if a.color_per == "frame" else 1)
        return {"jitter": u(n) < a.jitter_p, "order": u(n, 4).argsort(dim=1), "factors": lo + (hi - lo) * u(n, 4),
                "grey": u(n) < a.grayscale_p,
                "blur": u(b) < a.blur_p, "sigma": a.blur_sigma[0] + (a.blur_sigma[1] - a.blur_sigma[0]) * u(b),
                "lab_drop": torch.randint(0, 3, (b,), generator=generator),
                "grey_channel": torch.randint(0, 3, (n,), generator=generator)}

    def forward(self, clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = self.draw(clips.shape[0], generator, clips.shape[2])
        x = clips.float() / 255 if clips.dtype == torch.uint8 else clips.float()
        if self.aug.color == "jitter":
            x = self.jitter(x, p)
        if self.aug.blur_p > 0 and p["blur"].any():
            idx = p["blur"].nonzero()[:, 0].to(x.device)
            x = x.index_copy(0, idx, gaussian_blur_clips(x.index_select(0, idx), p["sigma"][p["blur"]], self.kernel))
        if self.aug.color == "lab_dropout":
            lab = scaled_lab(x.transpose(1, 2)).transpose(1, 2)               # [B, 3, T, H, W]
            keep = F.one_hot(p["lab_drop"], 3).logical_not().to(device=x.device, dtype=lab.dtype)
            return lab * keep[:, :, None, None, None]
        return (x - MEAN.to(x.device)) / STD.to(x.device)

    def jitter(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        """Colour jitter (with probability ``jitter_p``), then grey (``grayscale_p``), per clip or
        per frame (each frame then a one-frame clip of its own)."""
        b, c, t, h, w = x.shape
        if self.aug.color_per == "frame":
            x = x.transpose(1, 2).reshape(b * t, c, 1, h, w)
        m, offset = affine_colour_maps(p["order"], p["factors"])
        on = p["jitter"][:, None, None]
        x = apply_colour_maps(x, torch.where(on, m, torch.eye(3)), torch.where(on, offset, torch.zeros(3, 3)))
        if self.aug.grayscale == "channel":
            grey = x[torch.arange(len(x)), p["grey_channel"].to(x.device)][:, None].expand_as(x)
        else:
            grey = torch.einsum("c,bcthw->bthw", LUMA.to(x.device, x.dtype), x)[:, None].expand_as(x)
        x = torch.where(p["grey"].to(x.device)[:, None, None, None, None], grey, x)
        if self.aug.color_per == "frame":
            x = x.reshape(b, t, c, h, w).transpose(1, 2)
        return x
