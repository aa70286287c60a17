"""A step with non-finite gradients makes no update and is counted; too many stop the run."""
import pytest
import torch
from torch.utils.data import IterableDataset

from benchmark.trainer import LoopSettings, TrainingDiverged, new_scaler, train_steps


class Batches(IterableDataset):
    def __init__(self, steps):
        self.steps = steps

    def __iter__(self):
        for step in range(self.steps):
            yield {"views": [torch.ones(1, 1)], "label": torch.zeros(1, dtype=torch.long), "step": step}


class NaNGradientOn(torch.autograd.Function):
    """Identity forward; the backward's gradient is NaN on the chosen steps (the loss stays finite)."""
    @staticmethod
    def forward(ctx, w, poison):
        ctx.poison = poison
        return w.clone()

    @staticmethod
    def backward(ctx, grad):
        return (grad * float("nan") if ctx.poison else grad), None


class Linear(torch.nn.Module):
    def __init__(self, poisoned_steps):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0]))
        self.poisoned, self.calls = set(poisoned_steps), 0

    def forward(self, views, labels):
        out = NaNGradientOn.apply(self.w, self.calls in self.poisoned)
        self.calls += 1
        return {"loss": (3.0 * out).sum()}  # d loss / d w = 3 every step


def run(model, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    settings = LoopSettings(steps=steps, progress=False, checkpoint_every=10**6)
    return train_steps(model, Batches(steps), opt, sched, new_scaler(torch.device("cpu"), "fp32"),
                       torch.device("cpu"), settings)


def test_a_step_with_nan_gradients_makes_no_update_and_is_counted():
    model = Linear(poisoned_steps=[1])
    skipped = run(model, steps=3).skipped_steps
    assert skipped == 1
    # two SGD updates of 0.5 * 3 each, not three; and no NaN reached the weights
    assert model.w.item() == pytest.approx(1.0 - 2 * 1.5)


def test_clean_run_skips_nothing():
    model = Linear(poisoned_steps=[])
    skipped = run(model, steps=3).skipped_steps
    assert skipped == 0 and model.w.item() == pytest.approx(1.0 - 3 * 1.5)


def test_more_skipped_steps_than_allowed_stop_the_run():
    with pytest.raises(TrainingDiverged, match="gradients not finite in 2 steps"):
        run(Linear(poisoned_steps=[0, 2]), steps=4)  # 5% of 4 steps: at least 1 allowed
