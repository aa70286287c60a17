import torch

from benchmark.data.augment import build_clip_augment, rgb_to_lab
from benchmark.config import AugmentConfig


def _clip():
    torch.manual_seed(0)
    frame = torch.randint(0, 255, (3, 48, 48), dtype=torch.uint8)
    return frame.unsqueeze(0).repeat(6, 1, 1, 1)  # 6 identical frames


def test_same_parameters_for_every_frame_of_a_view_and_different_between_views():
    aug = build_clip_augment(AugmentConfig(crop_size=32, color="jitter", jitter_p=1.0, grayscale_p=0.0,
                                           rotation_degrees=20.0), 32)
    clip = _clip()
    torch.manual_seed(1)
    v1 = aug(clip)
    v2 = aug(clip)
    assert v1.shape == (6, 3, 32, 32)
    for t in range(1, 6):  # identical input frames stay identical: one draw per view
        assert torch.allclose(v1[t], v1[0]) and torch.allclose(v2[t], v2[0])
    assert not torch.allclose(v1[0], v2[0])


def test_lab_dropout_zeroes_one_channel_per_view():
    aug = build_clip_augment(AugmentConfig(crop_size=32, color="lab_dropout"), 32)
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
