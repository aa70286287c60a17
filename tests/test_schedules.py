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



def test_epochs_become_steps_and_rates_scale_with_the_global_batch():
    from dataclasses import astuple
    from types import SimpleNamespace

    from benchmark.optim import lr_factor, schedule_in_steps
    t = SimpleNamespace(steps=400, warmup_steps=0, lr=0.1, batch_size=8, epochs=None, warmup_epochs=None,
                        warmup_start_lr=None, lr_reference_batch=None)
    assert astuple(schedule_in_steps(t, 168, 1)) == (400, 0, 0.1, None)  # nothing set: the counts as given
    t.epochs, t.warmup_epochs, t.warmup_start_lr, t.lr_reference_batch = 10, 2.5, 0.001, 64
    plan = schedule_in_steps(t, 168, 2)  # 168 videos, 16 clips a step: 11 steps an epoch
    assert (plan.steps, plan.warmup_steps) == (110, round(2.5 * 11))
    assert plan.lr == pytest.approx(0.1 * 16 / 64) and plan.warmup_start_factor == pytest.approx(0.001 / 0.1)
    # the warm-up climbs linearly from warmup_start_lr to lr (SlowFast's lr_policy.get_lr_at_epoch)
    w = plan.warmup_steps
    assert lr_factor(0, plan.steps, "cosine", w, warmup_start=plan.warmup_start_factor) == pytest.approx(0.01)
    half = lr_factor(w // 2, plan.steps, "cosine", w, warmup_start=plan.warmup_start_factor)
    assert half == pytest.approx(0.01 + 0.99 * (w // 2) / w)
    assert lr_factor(w, plan.steps, "cosine", w, warmup_start=plan.warmup_start_factor) == pytest.approx(1.0)


def test_a_run_in_epochs_trains_and_records_the_steps_it_ran(tmp_path, tiny_dataset):
    import json

    from test_cli import FAST, cli
    p = cli(["run", f"dataset.root={tiny_dataset}", f"results_dir={tmp_path / 'r'}", "trainer.epochs=0.5",
             "trainer.warmup_epochs=0.25", "trainer.lr_reference_batch=4", *FAST], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(next((tmp_path / "r").glob("*/result.json")).read_text())
    videos = len((tiny_dataset / "ucfTrainTestlist" / "trainlist01.txt").read_text().splitlines())  # split 1 training list
    assert r["pretrain"]["steps"] == round(0.5 * -(-videos // 2))  # half an epoch at batch 2
    t = r["config"]["trainer"]
    assert r["pretrain"]["steps"] == t["steps"] and t["epochs"] is None  # the config records what ran
    assert t["warmup_steps"] == round(0.25 * -(-videos // 2))
    assert t["lr"] == pytest.approx(2e-4 * 2 / 4)  # batch 2 of the base rate's 4 clips
