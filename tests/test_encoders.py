import pytest
import torch

from encoders import build_encoder

TABLE1 = {"block1": (64, 16, 64, 64), "block2": (64, 14, 62, 62), "block3": (128, 14, 30, 30),
          "block4": (256, 14, 14, 14), "block5": (512, 7, 7, 7), "block6": (512, 5, 5, 5),
          "block7": (512, 3, 3, 3), "block8": (512, 1, 1, 1)}


def test_vdim_matches_table1_sizes_and_parameter_count():
    enc = build_encoder("vdim").eval()
    with torch.no_grad():
        out = enc(torch.zeros(1, 3, 32, 128, 128))
    assert {k: tuple(v.shape[1:]) for k, v in out.items() if k != "global"} == TABLE1
    assert out["global"].shape == (1, 512)
    params = sum(p.numel() for p in enc.parameters()) / 1e6
    assert abs(params - 17.3) / 17.3 < 0.03  # phi_8 o Psi, as the paper counts


def test_vdim_small_keeps_local_maps():
    enc = build_encoder("vdim_small").eval()
    with torch.no_grad():
        out = enc(torch.zeros(2, 3, 16, 64, 64))
    assert out["block5"].shape[2:] == (7, 7, 7) and out["block6"].shape[2:] == (5, 5, 5)


@pytest.mark.parametrize("name,shape", [("vdim_small", (16, 64, 64)), ("slow_r50", (4, 32, 32)),
                                        ("r2plus1d_r18", (4, 32, 32)), ("x3d_s", (4, 32, 32))])
def test_backbones_forward_backward_and_global(name, shape):
    enc = build_encoder(name)
    out = enc(torch.randn(2, 3, *shape))
    assert out["global"].shape == (2, enc.global_dim)
    out["global"].sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


def test_slow_r50_parameter_count_with_head():
    enc = build_encoder("slow_r50")
    params = sum(p.numel() for p in enc.parameters()) + 2048 * 400 + 400
    assert abs(params / 1e6 - 32.45) < 0.01


def test_wrong_input_size_names_expected_size():
    enc = build_encoder("vdim_small")
    with pytest.raises(ValueError, match=r"expects input \[B, 3, 16, 64, 64\]"):
        enc(torch.zeros(1, 3, 16, 32, 32))
