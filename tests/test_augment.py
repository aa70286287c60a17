import pytest
import torch
from torchvision.transforms import v2

from benchmark.data.augment import build_clip_augment, rgb_to_lab
from conftest import augment_config


def _clip():
    torch.manual_seed(0)
    frame = torch.randint(0, 255, (3, 48, 48), dtype=torch.uint8)
    return frame.unsqueeze(0).repeat(6, 1, 1, 1)  # 6 identical frames


def test_same_parameters_for_every_frame_of_a_view_and_different_between_views():
    aug = build_clip_augment(augment_config(crop_size=32, color="jitter", jitter_p=1.0, grayscale_p=0.0,
                                           rotation_degrees=20.0), 32)
    clip = _clip()
    torch.manual_seed(1)
    v1 = aug(clip)
    v2 = aug(clip)
    assert v1.shape == (6, 3, 32, 32)
    for t in range(1, 6):  # identical input frames stay identical: one draw per view
        assert torch.allclose(v1[t], v1[0]) and torch.allclose(v2[t], v2[0])
    assert not torch.allclose(v1[0], v2[0])


def test_colour_per_frame_draws_each_frame_apart():
    """augment.color_per=frame (DPC): identical input frames leave the jitter differently coloured,
    while the crop stays one for the clip (the frames' pixels agree up to a per-frame colour map)."""
    aug = build_clip_augment(augment_config(crop_size=32, color="jitter", jitter_p=1.0, grayscale_p=0.0,
                                           color_per="frame"), 32)
    torch.manual_seed(3)
    v = aug(_clip())
    assert v.shape == (6, 3, 32, 32)
    assert not torch.allclose(v[1], v[0], atol=1e-3) and not torch.allclose(v[2], v[0], atol=1e-3)
    # the same crop for every frame: the ranks of the pixels' brightness agree closely across frames
    rank = lambda f: f.mean(0).flatten().argsort().argsort().float()  # noqa: E731
    assert torch.corrcoef(torch.stack([rank(v[0]), rank(v[1])]))[0, 1] > 0.8


def test_channel_grey_copies_one_input_channel():
    """augment.grayscale=channel (DPC's RandomGray): a greyed frame is one of its RGB channels x3."""
    aug = build_clip_augment(augment_config(crop_size=48, crop_area=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip_p=0.0,
                                           color="jitter", jitter_p=0.0, grayscale_p=1.0, grayscale="channel",
                                           color_per="frame"), 48)
    clip = _clip().float() / 255
    torch.manual_seed(4)
    v = aug(clip)
    picked = set()
    for t in range(6):
        assert torch.equal(v[t, 0], v[t, 1]) and torch.equal(v[t, 0], v[t, 2])
        match = [c for c in range(3) if torch.allclose(v[t, 0], clip[t, c], atol=1e-6)]
        assert len(match) == 1
        picked.add(match[0])
    assert len(picked) > 1  # drawn per frame


def test_lab_dropout_zeroes_one_channel_per_view():
    aug = build_clip_augment(augment_config(crop_size=32, color="lab_dropout"), 32)
    clip = _clip()
    torch.manual_seed(2)
    v = aug(clip)
    zero = [(v[:, c] == 0).all().item() for c in range(3)]
    assert sum(zero) == 1


def test_rgb_to_lab_known_values():
    white = rgb_to_lab(torch.ones(3, 1, 1)).flatten()
    red = rgb_to_lab(torch.tensor([1.0, 0, 0]).view(3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0, 0]), atol=0.1)
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20]), atol=0.2)


def _mid_range_clip(t=4, size=24):
    torch.manual_seed(3)
    return torch.rand(t, 3, size, size) * 0.3 + 0.3  # no adjustment below reaches 0 or 1


def test_affine_jitter_matches_torchvision_without_hue():
    """Brightness, contrast and saturation are affine: with the same RNG state the fused map
    equals torchvision's ColorJitter (same draws, same random order) wherever nothing clips."""
    from benchmark.data.augment import AffineColorJitter
    clip = _mid_range_clip()
    clip[1] *= 0.8  # frames with different means: contrast blends with each frame's own mean grey
    for seed in range(6):
        torch.manual_seed(seed)
        ours = AffineColorJitter(0.25, 0.25, 0.25, 0.0)(clip)
        torch.manual_seed(seed)
        ref = v2.ColorJitter(0.25, 0.25, 0.25, 0.0)(clip)
        assert torch.allclose(ours, ref, atol=1e-5)


def test_hue_rotation_turns_hue_like_torchvision():
    from torchvision.transforms.v2 import functional as F
    from benchmark.data import augment
    hue_rotation = lambda h: torch.as_tensor(augment.hue_rotation(h), dtype=torch.float32)  # noqa: E731
    red = torch.tensor([1.0, 0.0, 0.0])
    assert torch.allclose(hue_rotation(1 / 3) @ red, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(hue_rotation(0.2) @ torch.full((3,), 0.4), torch.full((3,), 0.4), atol=1e-6)  # grey stays
    clip = _mid_range_clip()
    for h in (0.1, -0.15, 0.5):
        ours = torch.einsum("ij,tjhw->tihw", hue_rotation(h), clip).clamp(0, 1)
        ref = F.adjust_hue(clip, h)
        # same direction and size of turn: far closer to torchvision's result than the input is
        assert (ours - ref).abs().mean() < 0.75 * (ref - clip).abs().mean()


def test_affine_jitter_takes_uint8_and_returns_unit_range_floats():
    from benchmark.data.augment import AffineColorJitter
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    y = AffineColorJitter(0.8, 0.8, 0.8, 0.5)(x)
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1 and y.shape == x.shape


def test_unknown_jitter_impl_names_the_choices():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="affine"):
        build_clip_augment(augment_config(crop_size=32, color="jitter", jitter_impl="fast"), 32)


@pytest.mark.parametrize("key,bad,choices", [("grayscale", "lum", "channel, luma"), ("color_per", "video", "clip, frame")])
def test_unknown_grey_or_draw_unit_names_the_choices(key, bad, choices):
    from benchmark.errors import UserError
    with pytest.raises(UserError, match=f"augment.{key}.*{choices}"):
        build_clip_augment(augment_config(crop_size=32, **{key: bad}), 32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_clip_blur_equals_torchvision_gaussian_blur(dtype):
    """Same sigma draw from the same RNG state, same kernel and padding; float clips agree to
    rounding, uint8 ones (rounded back, as torchvision does) to within one level."""
    from benchmark.data.augment import ClipGaussianBlur
    g = torch.Generator().manual_seed(3)
    clip = torch.rand(4, 3, 20, 24, generator=g)
    clip = (clip * 255).round().to(torch.uint8) if dtype == torch.uint8 else clip
    torch.manual_seed(11)
    ours = ClipGaussianBlur(7, (0.1, 2.0))(clip)
    torch.manual_seed(11)
    ref = v2.GaussianBlur(7, sigma=(0.1, 2.0))(clip)
    assert ours.dtype == ref.dtype == dtype and not torch.equal(ref, clip)
    if dtype == torch.uint8:
        assert (ours.int() - ref.int()).abs().max() <= 1 and (ours == ref).float().mean() > 0.99
    else:
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def _frames(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 255, (1, 3, h, w), dtype=torch.uint8, generator=g).repeat(3, 1, 1, 1)


def _is_window_of(out: torch.Tensor, full: torch.Tensor, tol: float) -> bool:
    """``out [T, 3, s, s]`` equals (to ``tol``) some s x s window of ``full [T, 3, H, W]``."""
    s = out.shape[-1]
    for top in range(full.shape[-2] - s + 1):
        for left in range(full.shape[-1] - s + 1):
            if (out.float() - full[..., top:top + s, left:left + s].float()).abs().max() <= tol:
                return True
    return False


def test_scale_jitter_resizes_the_short_side_and_cuts_a_square_from_it():
    """augment.crop=scale_jitter (SlowFast's TRAIN_JITTER_SCALES then TRAIN_CROP_SIZE): the short side
    goes to a size drawn from the range, the aspect is kept, and the crop is a window of that."""
    from torchvision.transforms.v2 import functional as TF
    frames = _frames()
    aug = build_clip_augment(augment_config(crop="scale_jitter", scale_jitter=[40, 40], crop_size=32, color="none",
                                            flip_p=0.0), 32)
    torch.manual_seed(0)
    out = aug(frames)
    assert out.shape == (3, 3, 32, 32)
    resized = TF.resize(frames, [40], antialias=True).float() / 255  # 40 x 53: the aspect kept
    assert resized.shape[-2:] == (40, 53)
    assert _is_window_of(out, resized, 1e-6)


def test_scale_jitter_needs_a_range_that_holds_the_crop():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match=r"bad augment.scale_jitter \[200, 320\].*crop_size 224"):
        build_clip_augment(augment_config(crop="scale_jitter", scale_jitter=[200, 320], crop_size=224), 224)


@pytest.mark.parametrize("key,bad", [("crop", "random"), ("order", "blur_first"), ("flip_per", "clip")])
def test_unknown_crop_order_or_flip_unit_names_the_choices(key, bad):
    from benchmark.errors import UserError
    from benchmark.data.augment import CROP_CHOICES, FLIP_PER_CHOICES, ORDER_CHOICES
    choices = {"crop": CROP_CHOICES, "order": ORDER_CHOICES, "flip_per": FLIP_PER_CHOICES}[key]
    with pytest.raises(UserError, match=f"augment.{key}.*{', '.join(sorted(choices))}"):
        build_clip_augment(augment_config(**{key: bad}), 32)


def test_colour_first_blurs_the_frame_before_the_crop():
    """augment.order=colour_first (SlowFast's kinetics.py: color_jitter_video_ssl, then
    spatial_sampling): the crop is a window of the whole blurred frame, with the blur's sigma in the
    frame's pixels; crop_first blurs the window itself, so its borders differ."""
    from torchvision.transforms.v2 import functional as TF
    from benchmark.data.augment import sigma_kernel_size
    frames = _frames()
    kw = dict(crop="scale_jitter", scale_jitter=[48, 48], crop_size=32, color="none", flip_p=0.0, blur_p=1.0,
              blur_sigma=[1.5, 1.5])
    blurred = TF.gaussian_blur(frames.float(), [sigma_kernel_size(1.5)] * 2, [1.5, 1.5]) / 255
    torch.manual_seed(0)
    first = build_clip_augment(augment_config(order="colour_first", **kw), 32)(frames)
    assert _is_window_of(first, blurred, 1.5 / 255)  # uint8 rounding after the blur
    torch.manual_seed(0)
    after = build_clip_augment(augment_config(order="crop_first", **kw), 32)(frames)
    assert not _is_window_of(after, blurred, 1.5 / 255)


def test_colour_first_cannot_colour_on_the_device():
    from benchmark.data.batch_augment import check_augment_on
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="augment.order=colour_first needs trainer.augment_on=workers"):
        check_augment_on("device", augment_config(order="colour_first"))


@pytest.mark.parametrize("flip_per", ["sample", "view"])
def test_flip_per_sample_flips_every_view_of_a_sample_together(flip_per):
    """augment.flip_per=sample (AMDIM's flip_lr before both views): a sample's views are all
    flipped or none is, and both happen; per view, some samples get one of each."""
    from benchmark.data.pipeline import clip_view_fn
    aug = dict(crop_size=32, crop_area=[1.0, 1.0], crop_ratio=[1.0, 1.0], color="none", flip_per=flip_per)
    view = clip_view_fn(augment_config(flip_p=0.5, **aug), 32)
    frames = _frames(32, 32).permute(0, 2, 3, 1)  # decoded [T, H, W, 3]
    plain = clip_view_fn(augment_config(flip_p=0.0, **aug), 32)(frames, 0)  # the whole frame, unflipped
    assert not torch.equal(plain, plain.flip(-1))
    flipped = []  # per sample: (view 0 flipped, view 1 flipped)
    for sample in range(40):
        torch.manual_seed(sample)  # load_views seeds torch once per sample, then makes views 0, 1 in order
        pair = [view(frames, k) for k in (0, 1)]
        assert all(torch.equal(v, plain) or torch.equal(v, plain.flip(-1)) for v in pair)
        flipped.append(tuple(not torch.equal(v, plain) for v in pair))
    together = [a == b for a, b in flipped]
    assert {a for a, _ in flipped} == {True, False}
    assert all(together) if flip_per == "sample" else not all(together)
