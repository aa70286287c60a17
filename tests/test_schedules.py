"""Learning-rate schedules against torch's own schedulers."""
import pytest
import torch

from benchmark.optim import build_scheduler


def _lrs(sched, opt, steps):
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("decay_at,every", [([6, 8, 10], 0), ([], 4)])
def test_step_decay_matches_torch_multistep(decay_at, every):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ours = _lrs(build_scheduler(opt, 12, "step", 0, every, 0.1, decay_at), opt, 12)
    opt = torch.optim.SGD([p], lr=1.0)
    milestones = decay_at or list(range(every, 12, every))
    want = _lrs(torch.optim.lr_scheduler.MultiStepLR(opt, milestones, 0.1), opt, 12)
    assert ours == pytest.approx(want)
