"""evaluation.batch_norm: an encoder pretrained without BN running statistics gets population
statistics before the frozen protocols read it, against statistics computed directly."""
import torch
from torch import nn

from evaluation.batch_norm import lacks_running_statistics, track_running_statistics, with_population_statistics


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 4, 1)
        self.bn = nn.BatchNorm3d(4, track_running_stats=False)

    def forward(self, x):
        return {"global": self.bn(self.conv(x)).mean((2, 3, 4))}


def test_population_statistics_are_the_mean_and_variance_over_every_batch():
    enc = Tiny()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 3, 2, 5, 5, generator=g) + i for i in range(6)]  # batches differ in mean
    assert lacks_running_statistics(enc)
    # batch statistics: one clip's feature depends on its companions
    x = batches[0]
    alone = enc(x[:1])["global"]
    assert not torch.allclose(alone, enc(torch.cat([x[:1], batches[5]]))["global"][:1], atol=1e-3)

    fixed = with_population_statistics(enc, iter(batches), len(batches))
    assert not lacks_running_statistics(fixed) and lacks_running_statistics(enc)  # a copy; the original is kept
    with torch.no_grad():
        y = torch.cat([enc.conv(b) for b in batches]).transpose(0, 1).flatten(1)  # [C, every location]
    torch.testing.assert_close(fixed.bn.running_mean, y.mean(1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fixed.bn.running_var, y.var(1), rtol=1e-3, atol=1e-5)
    one = fixed(x[:1])["global"]  # now each clip's feature is its own
    torch.testing.assert_close(one, fixed(torch.cat([x[:1], batches[5]]))["global"][:1])


def test_track_running_statistics_starts_from_zero_mean_and_unit_variance():
    enc = track_running_statistics(Tiny())
    assert enc.bn.track_running_stats and torch.equal(enc.bn.running_mean, torch.zeros(4))
    assert torch.equal(enc.bn.running_var, torch.ones(4)) and int(enc.bn.num_batches_tracked) == 0
