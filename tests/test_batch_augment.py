"""trainer.augment_on=device: the batched colour / grey / blur / normalisation against
per-clip references computed step by step."""
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from conftest import augment_config
from benchmark.data.augment import LUMA, MEAN, STD, gaussian_blur_clips, hue_rotation, scaled_lab
from benchmark.data.batch_augment import BatchClipAugment, step_generator
from benchmark.errors import UserError


def _aug(**kw):
    base = dict(crop_size=24, color="jitter", jitter_p=0.0, grayscale_p=0.0, blur_p=0.0,
                brightness=0.5, contrast=0.5, saturation=0.5, hue=0.3)
    return augment_config(**{**base, **kw})


def _clips(b=6, t=3, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(60, 190, (b, 3, t, size, size), dtype=torch.uint8, generator=g)


def _unnormalise(x):
    return x * STD + MEAN


def _jitter_one_clip(x, order, factors):
    """Reference: the four adjustments applied to the pixels one after another (no affine-map
    composition), as torchvision defines them; ``x`` is ``[3, T, H, W]`` in [0, 1]."""
    for op in order:
        f = float(factors[op])
        luma = torch.einsum("c,cthw->thw", LUMA, x)
        if op == 0:
            x = x * f
        elif op == 1:
            x = f * x + (1 - f) * luma.mean(dim=(-2, -1))[None, :, None, None]
        elif op == 2:
            x = f * x + (1 - f) * luma[None]
        else:
            x = torch.einsum("ij,jthw->ithw", torch.as_tensor(hue_rotation(f), dtype=x.dtype), x)
    return x.clamp(0, 1)


def test_batched_jitter_equals_each_clip_adjusted_step_by_step():
    aug = BatchClipAugment(_aug(jitter_p=1.0), 24)
    clips = _clips()
    p = aug.draw(len(clips), step_generator(0, 5, 0, 1))
    assert len({tuple(o.tolist()) for o in p["order"]}) > 1  # the clips' orders differ: the hard case
    got = _unnormalise(aug(clips, step_generator(0, 5, 0, 1)))
    x = clips.float() / 255
    for b in range(len(clips)):
        want = _jitter_one_clip(x[b], p["order"][b].tolist(), p["factors"][b])
        assert torch.allclose(got[b], want, atol=1e-5), b


def test_per_frame_jitter_and_channel_grey_equal_each_frame_adjusted_alone():
    """color_per=frame, grayscale=channel (DPC): frame t of clip b gets draw b * T + t."""
    aug = BatchClipAugment(_aug(jitter_p=1.0, grayscale_p=0.5, grayscale="channel", color_per="frame"), 24)
    clips = _clips(b=3, t=4)
    p = aug.draw(3, step_generator(0, 7, 0, 0), frames=4)
    assert len(p["order"]) == 12 and p["grey"].any() and not p["grey"].all()
    got = _unnormalise(aug(clips, step_generator(0, 7, 0, 0)))
    x = clips.float() / 255
    for b in range(3):
        for t in range(4):
            i = b * 4 + t
            want = _jitter_one_clip(x[b, :, t:t + 1], p["order"][i].tolist(), p["factors"][i])
            if p["grey"][i]:
                want = want[int(p["grey_channel"][i])][None].expand(3, -1, -1, -1)
            assert torch.allclose(got[b, :, t:t + 1], want, atol=1e-5), (b, t)


def test_jitter_and_grey_follow_their_probabilities_per_clip():
    aug = BatchClipAugment(_aug(jitter_p=0.5, grayscale_p=0.5), 24)
    clips = _clips(b=8)
    p = aug.draw(8, step_generator(1, 0, 0, 0))
    assert 0 < int(p["jitter"].sum()) < 8 and 0 < int(p["grey"].sum()) < 8
    got = _unnormalise(aug(clips, step_generator(1, 0, 0, 0)))
    x = clips.float() / 255
    for b in range(8):
        want = _jitter_one_clip(x[b], p["order"][b].tolist(), p["factors"][b]) if p["jitter"][b] else x[b]
        if p["grey"][b]:
            want = torch.einsum("c,cthw->thw", LUMA, want)[None].expand(3, -1, -1, -1)
        assert torch.allclose(got[b], want, atol=1e-5), b


def test_draw_rates_and_ranges_match_the_config():
    cfg = _aug(jitter_p=0.8, grayscale_p=0.2, blur_p=0.5, blur_sigma=[0.1, 2.0])
    p = BatchClipAugment(cfg, 24).draw(4000, step_generator(0, 0, 0, 0))
    for key, rate in (("jitter", 0.8), ("grey", 0.2), ("blur", 0.5)):
        assert p[key].float().mean().item() == pytest.approx(rate, abs=0.03), key
    assert ((p["sigma"] >= 0.1) & (p["sigma"] <= 2.0)).all()
    assert (p["order"].sort(dim=1).values == torch.arange(4)).all()  # a permutation per clip
    lo, hi = torch.tensor([0.5, 0.5, 0.5, -0.3]), torch.tensor([1.5, 1.5, 1.5, 0.3])
    assert ((p["factors"] >= lo) & (p["factors"] <= hi)).all()
    assert torch.bincount(p["lab_drop"], minlength=3).min() > 1200


def test_blur_matches_torchvision_per_clip():
    x = _clips(b=3, size=20).float() / 255
    sigma = torch.tensor([0.3, 1.0, 2.0])
    got = gaussian_blur_clips(x, sigma, 5)
    for b in range(3):
        want = TF.gaussian_blur(x[b].transpose(0, 1), [5, 5], [float(sigma[b])] * 2).transpose(0, 1)
        assert torch.allclose(got[b], want, atol=1e-6), b
    assert not torch.allclose(got[0], got[2], atol=1e-3)


def test_only_the_clips_drawn_for_blur_are_blurred():
    aug = BatchClipAugment(_aug(color="none", blur_p=0.5), 24)
    clips = _clips(b=8)
    p = aug.draw(8, step_generator(3, 1, 0, 0))
    assert 0 < int(p["blur"].sum()) < 8
    got = _unnormalise(aug(clips, step_generator(3, 1, 0, 0)))
    x = clips.float() / 255
    for b in range(8):
        want = gaussian_blur_clips(x[b:b + 1], p["sigma"][b:b + 1], 3)[0] if p["blur"][b] else x[b]
        assert torch.allclose(got[b], want, atol=1e-5), b


def test_lab_dropout_zeroes_one_channel_per_clip():
    aug = BatchClipAugment(_aug(color="lab_dropout"), 24)
    clips = _clips()
    p = aug.draw(len(clips), step_generator(0, 0, 0, 0))
    got = aug(clips, step_generator(0, 0, 0, 0))
    lab = scaled_lab((clips.float() / 255).transpose(1, 2)).transpose(1, 2)
    for b in range(len(clips)):
        d = int(p["lab_drop"][b])
        assert (got[b, d] == 0).all()
        keep = [c for c in range(3) if c != d]
        assert torch.allclose(got[b, keep], lab[b, keep], atol=1e-5)


def test_step_generator_is_a_function_of_seed_step_rank_and_view():
    draw = lambda *key: torch.rand(4, generator=step_generator(*key))  # noqa: E731
    assert torch.equal(draw(0, 7, 1, 0), draw(0, 7, 1, 0))
    for other in [(1, 7, 1, 0), (0, 8, 1, 0), (0, 7, 0, 0), (0, 7, 1, 1)]:
        assert not torch.equal(draw(0, 7, 1, 0), draw(*other))


def test_device_path_needs_the_affine_jitter():
    with pytest.raises(UserError, match="augment.jitter_impl=affine"):
        BatchClipAugment(_aug(jitter_impl="torchvision"), 24)


def test_workers_send_cropped_uint8_clips_and_the_trainer_finishes_them():
    """The two halves of augment_on=device give the model input the workers' path gives: same
    shape and dtype, normalised, and the same augmentation when both are switched off."""
    from benchmark.config import EncoderConfig
    from benchmark.data.pipeline import batch_augment, train_view_fn

    enc = EncoderConfig(name="vdim_small", frames=4, size=16)
    augment = _aug(crop_size=16, crop_area=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip_p=0.0)
    frames = torch.randint(0, 255, (4, 16, 16, 3), dtype=torch.uint8)
    worker_view = train_view_fn(augment, enc, "device")
    full_view = train_view_fn(augment, enc, "workers")
    half = worker_view(frames, 0)
    assert half.dtype == torch.uint8 and half.shape == (3, 4, 16, 16)
    finish = batch_augment(augment, enc, "device")
    got = finish(half[None], step_generator(0, 0, 0, 0))[0]
    want = full_view(frames, 0)  # no jitter, grey or blur drawn: only scaling and normalising
    assert got.dtype == want.dtype and torch.allclose(got, want, atol=1e-6)
    assert batch_augment(augment, enc, "workers") is None
    with pytest.raises(UserError, match="valid choices: device, workers"):
        train_view_fn(augment, enc, "gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("color", ["jitter", "lab_dropout"])
def test_cuda_gives_the_cpu_result(color):
    aug = BatchClipAugment(_aug(color=color, jitter_p=0.7, grayscale_p=0.3, blur_p=0.5), 24)
    clips = _clips(b=8)
    cpu = aug(clips, step_generator(0, 3, 0, 1))
    cuda = aug(clips.cuda(), step_generator(0, 3, 0, 1))
    assert cuda.is_cuda and torch.allclose(cuda.cpu(), cpu, atol=1e-4)
