"""torch.distributed set-up from torchrun's environment, and the device choice."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from benchmark.errors import UserError, unknown_choice
from methods.base import world_size


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def export_launcher_env() -> None:
    """Under Hydra's submitit launcher (``launcher=slurm``, or ``submitit_local``) with several
    tasks, each task is one process: export torch.distributed's variables (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR/PORT) from the job's environment with submitit's own helper, as
    torchrun would have set them. A no-op under torchrun or for a single task."""
    if "WORLD_SIZE" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment
    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice not in ("auto", "cpu", "cuda"):
        raise unknown_choice("trainer.device", choice, ("auto", "cpu", "cuda"))
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is available; use trainer.device=auto or cpu")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (WORLD_SIZE > 1); NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def mean_over_processes(x: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when not distributed)."""
    if world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()


def check_sync_bn(sync_bn: bool, device: torch.device) -> None:
    if sync_bn and device.type != "cuda":
        raise UserError(f"trainer.sync_bn=true needs CUDA: PyTorch's SyncBatchNorm runs only on GPU (device here: "
                        f"{device.type}); use trainer.sync_bn=false")


def leave_process_group(dist_info: DistInfo) -> None:
    """After pretraining: wait for every rank (the checkpoint is complete), then leave the group.
    Evaluation runs on rank 0 alone, so the other ranks do not sit in a barrier with a timeout."""
    if dist_info.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def agree_on_run_dir(run_dir: Path, dist_info: DistInfo) -> Path:
    """Rank 0's run folder for every rank. Each torchrun process resolves Hydra's time-stamped
    run id itself, and two processes can straddle a second; the run id of rank 0 wins, so the
    checkpoints, the skipped-video log and result.json live in one folder."""
    if dist_info.world_size == 1:
        return run_dir
    shared = [str(run_dir)]
    dist.broadcast_object_list(shared, src=0)
    return Path(shared[0])
