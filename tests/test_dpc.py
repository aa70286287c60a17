"""DPC (Han et al. 2019) against its official code's shapes and parameter counts, and its loss
against an independent NumPy reference."""
import numpy as np
import pytest
import torch

from conftest import train_on_fixed_batch

from encoders import build_encoder
from methods import build_method
from methods.losses import dpc_logits, dpc_nce

# counted with the official code (TengdaHan/DPC: backbone/resnet_2d3d.py, dpc/model_3d.py DPC_RNN)
OFFICIAL_PARAMS = {"r2d3d_18": 14_057_536, "r2d3d_34": 32_422_208}
OFFICIAL_DPC_RNN_R18 = 14_583_104


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_r2d3d_parameters_equal_the_official_backbones(name):
    enc = build_encoder(name)
    assert sum(p.numel() for p in enc.parameters()) == OFFICIAL_PARAMS[name]


def test_r2d3d_maps_of_a_5x128x128_block():
    enc = build_encoder("r2d3d_18").eval()
    with torch.no_grad():
        maps = enc(torch.zeros(2, 3, 5, 128, 128))
    shapes = {k: tuple(v.shape[1:]) for k, v in maps.items()}
    assert shapes == {"stem": (64, 5, 32, 32), "layer1": (64, 5, 32, 32), "layer2": (128, 5, 16, 16),
                      "layer3": (256, 3, 8, 8), "layer4": (256, 2, 4, 4), "global": (256,)}
    # layer1-2 are 2-D (1x3x3) blocks, layer3-4 3-D; the last block ends without a ReLU
    assert enc.stages["layer2"][0].conv1.kernel_size == (1, 3, 3)
    assert enc.stages["layer3"][0].conv1.kernel_size == (3, 3, 3) and enc.stages["layer3"][0].conv1.stride == (2, 2, 2)
    assert not enc.stages["layer4"][-1].final_relu and all(b.final_relu for b in enc.stages["layer3"])
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 5, 64, 64))["layer4"]
    assert (out < 0).any()  # no ReLU after the last block


def numpy_dpc_nce(pred, target):
    """Independent reference: loop over every prediction (video, step, position); its positive is the
    target at the same video, step and position, every other target entry a negative."""
    b, p, d, h, w = pred.shape
    pr, ta = pred.astype(np.float64), target.astype(np.float64)
    losses = []
    for i in range(b):
        for s in range(p):
            for y in range(h):
                for x in range(w):
                    q = pr[i, s, :, y, x]
                    scores = np.einsum("d,jtdyx->jtyx", q, ta).reshape(-1)
                    pos = ((i * p + s) * h + y) * w + x
                    m = scores.max()
                    losses.append(-(scores[pos] - m - np.log(np.exp(scores - m).sum())))
    return float(np.mean(losses))


def test_dpc_nce_matches_an_independent_reference():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 2, 8, 2, 3, generator=g), torch.randn(3, 2, 8, 2, 3, generator=g)
    assert dpc_nce(pred, target).item() == pytest.approx(numpy_dpc_nce(pred.numpy(), target.numpy()), rel=1e-5)
    # unit predictions as their own targets, scaled: each positive outscores every other entry
    unit = torch.nn.functional.normalize(pred, dim=2) * 10
    assert dpc_nce(unit, unit).item() < 0.1 * dpc_nce(pred, target).item()


def test_dpc_logits_put_the_positive_at_the_same_video_step_and_position_of_the_gathered_targets():
    pred = torch.randn(2, 3, 4, 2, 2)
    everyone = torch.randn(6, 3, 4, 2, 2)  # three processes' targets; this is the second
    everyone[2:4] = pred
    logits, labels = dpc_logits(pred, everyone, offset=2)
    assert logits.shape == (2 * 3 * 4, 6 * 3 * 4)
    assert torch.equal(labels, torch.arange(24) + 24)
    rows = pred.permute(0, 1, 3, 4, 2).reshape(24, 4)
    torch.testing.assert_close(logits[torch.arange(24), labels], (rows * rows).sum(1))


def small_dpc(**kw):
    torch.manual_seed(0)
    enc = build_encoder("r2d3d_18", frames=5, size=64)
    return build_method("dpc", enc, frame_stride=1, **kw)


def test_dpc_rnn_parameters_equal_the_official_model():
    torch.manual_seed(0)
    m = build_method("dpc", build_encoder("r2d3d_18"), frame_stride=3)
    assert sum(p.numel() for p in m.parameters()) == OFFICIAL_DPC_RNN_R18
    bns = [mod for mod in m.encoder.modules() if isinstance(mod, torch.nn.BatchNorm3d)]
    assert bns and all(not bn.track_running_stats and bn.running_mean is None for bn in bns)  # the official default


@pytest.mark.parametrize("layout", ["official", "one_clip"])
def test_dpc_takes_blocks_in_either_layout_and_learns_a_fixed_batch(layout):
    m = small_dpc()
    g = torch.Generator().manual_seed(1)
    blocks = torch.randn(4, 8, 3, 5, 64, 64, generator=g)  # [B, N, C, SL, H, W]
    views = [blocks] if layout == "official" else [blocks.transpose(1, 2).reshape(4, 3, 40, 64, 64)]
    first, out = train_on_fixed_batch(m, views, 12)
    assert 0.0 <= out["top1"].item() <= 1.0 and out["loss"].item() < first
    # both layouts are the same sample: the second's blocks are the first's, in order
    one = blocks.transpose(1, 2).reshape(4, 3, 40, 64, 64)
    from methods.dpc import as_blocks
    torch.testing.assert_close(as_blocks(one, 8), blocks)


def test_dpc_sampler_is_one_clip_of_every_block_back_to_back():
    from methods import METHODS
    from omegaconf import OmegaConf
    sampler = METHODS["dpc"].clip_sampler(OmegaConf.create({"blocks": 8, "pred_steps": 3, "frame_stride": 3}),
                                          OmegaConf.create({"frames": 5}))
    (idx,) = sampler(500, np.random.default_rng(0))
    assert sampler.clips == 1 and len(idx) == 40 and np.all(np.diff(idx) == 3)
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="pred_steps"):
        METHODS["dpc"].clip_sampler(OmegaConf.create({"blocks": 3, "pred_steps": 3, "frame_stride": 1}),
                                    OmegaConf.create({"frames": 5}))


def test_perf_reference_step_computes_the_official_loss_of_the_same_weights():
    """The perf section's official step (mask, flattened score, argmax target) and our DPC give one
    loss on the same weights and blocks (evaluation mode: no dropout; BN by batch in both).
    fp32, reductions over at most 256 channels x 3 x 3 x 3 taps: 1e-4 relative covers kernel order."""
    from benchmark.perf.dpc import built_pair
    ours, official = built_pair(torch.device("cpu"))
    ours.eval(), official.eval()
    torch.manual_seed(1)
    x = torch.randn(2, 8, 3, 5, 64, 64)
    with torch.no_grad():
        a = ours([x])["loss"].item()
        b = official(x).item()
    assert a == pytest.approx(b, rel=1e-4)
    assert official.mask.shape == (2, 3, 4, 2, 3, 4) and int((official.mask == 1).sum()) == 2 * 3 * 4
