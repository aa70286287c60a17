"""DistributedDataParallel equivalence: 2 gloo processes on CPU against one process on the
concatenated batch. Loss (mean over processes) and the averaged gradients must match.

PyTorch's SyncBatchNorm runs only on GPU, so on CPU each process normalises with its own
batch's statistics, which differ from the whole batch's by design. The test therefore fixes
the BatchNorm statistics (eval mode) and compares everything else exactly: the all-gather
with gradient, the local-anchor VDIM loss, the distributed Sinkhorn, the MoCo queue and
DDP's gradient averaging.
"""
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from encoders import build_encoder
from methods import build_method
from test_methods import OVERRIDES as METHOD_OVERRIDES, TINY

WORLD = 2
PER_RANK = 2
OVERRIDES = {k: v for k, v in METHOD_OVERRIDES.items() if k != "supervised"}  # the self-supervised methods


def _method(name: str) -> nn.Module:
    torch.manual_seed(0)
    m = build_method(name, build_encoder("vdim_small", **TINY), num_classes=4, **OVERRIDES[name])
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.eval()
    return m


def _views(n_clips: int = 2):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(WORLD * PER_RANK, 3, 16, 64, 64, generator=g) for _ in range(n_clips)]


def _step(model: nn.Module, method: nn.Module, views):
    """Forward, backward and the after-step hook; returns the loss and every gradient."""
    loss = model(views)["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
    method.after_optimizer_step(1, 10)
    state = {"queue": method.queue.clone()} if hasattr(method, "queue") else {}
    return loss.detach(), grads, state


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for name in OVERRIDES:
            method = _method(name)
            model = nn.parallel.DistributedDataParallel(method)
            local = [v[rank * PER_RANK:(rank + 1) * PER_RANK] for v in _views()]
            torch.save(_step(model, method, local), Path(out_dir) / f"{name}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return out


@pytest.mark.parametrize("name", list(OVERRIDES))
def test_two_gloo_processes_equal_one_process_on_the_concatenated_batch(ddp_outputs, name):
    method = _method(name)
    loss, grads, state = _step(method, method, _views())
    ranks = [torch.load(ddp_outputs / f"{name}_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert torch.isfinite(loss)
    assert torch.stack([r[0] for r in ranks]).mean().item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    for r_loss, r_grads, r_state in ranks:
        assert set(r_grads) == set(grads)
        for n, g in grads.items():
            torch.testing.assert_close(r_grads[n], g, rtol=1e-4, atol=1e-6, msg=f"{name}: gradient of {n}")
        for k, v in state.items():  # MoCo: both processes enqueue every process's keys, in batch order
            # keys are unit vectors: a misplaced key differs by O(0.1), batch-size-dependent conv kernels by ~1e-4
            torch.testing.assert_close(r_state[k], v, rtol=1e-3, atol=1e-3)


def _gather_worker(rank: int, init_file: str, out_dir: str) -> None:
    """Each process gathers its ``[2, 3, 4]`` slice and backpropagates a loss that reads the
    gathered tensor through a permute, so the gradient reaching the all-gather is not contiguous."""
    from methods.base import gather_with_grad
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x = _gather_inputs()[rank].requires_grad_()
        gathered = gather_with_grad(x).permute(1, 0, 2).reshape(3, -1)  # [D, world * B * N]
        (gathered * _gather_weights()).sum().backward()
        torch.save(x.grad, Path(out_dir) / f"gather_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _gather_inputs():
    return torch.randn(WORLD, 2, 3, 4, generator=torch.Generator().manual_seed(3))


def _gather_weights():
    return torch.randn(3, WORLD * 2 * 4, generator=torch.Generator().manual_seed(4))


def test_gather_with_grad_returns_each_process_the_summed_gradient_of_its_slice(tmp_path):
    """Every process's loss reads all slices, so each slice's gradient is the sum over the
    processes of the (identical) per-process gradient: here ``WORLD x`` the weights it meets."""
    mp.spawn(_gather_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    w = _gather_weights().reshape(3, WORLD, 2, 4).permute(1, 2, 0, 3)  # the weight each element meets
    for r in range(WORLD):
        got = torch.load(tmp_path / f"gather_rank{r}.pt", weights_only=True)
        torch.testing.assert_close(got, WORLD * w[r])


def _shuffle_worker(rank: int, init_file: str, out_dir: str) -> None:
    from methods.base import with_shuffled_batch
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(1)  # rank 0's permutation is broadcast; every rank draws one
        x = _shuffle_inputs()[rank * PER_RANK:(rank + 1) * PER_RANK]
        torch.save(with_shuffled_batch(_batch_centred, x), Path(out_dir) / f"shuffle_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _shuffle_inputs():
    return torch.randn(WORLD * PER_RANK, 3, generator=torch.Generator().manual_seed(5))


def _batch_centred(x):
    """A function whose output depends on the whole batch it is given, as batch norm's does."""
    return x - x.mean(0, keepdim=True)


def test_shuffled_batch_norm_gives_each_sample_the_statistics_of_its_shuffled_share(tmp_path):
    """MoCo's shuffling BN: the samples of all processes permuted by rank 0's permutation, each
    process's function on its share, and the outputs returned to the samples' own processes."""
    mp.spawn(_shuffle_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    torch.manual_seed(1)
    perm = torch.randperm(WORLD * PER_RANK)  # [1, 3, 2, 0]: each share mixes the two processes' samples
    x = _shuffle_inputs()
    expected = torch.empty_like(x)
    for r in range(WORLD):
        share = perm[r * PER_RANK:(r + 1) * PER_RANK]
        expected[share] = _batch_centred(x[share])
    got = torch.cat([torch.load(tmp_path / f"shuffle_rank{r}.pt", weights_only=True) for r in range(WORLD)])
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, torch.cat([_batch_centred(x[:PER_RANK]), _batch_centred(x[PER_RANK:])]))
