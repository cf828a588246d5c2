"""torch.distributed in one place, for training, the Hessian and landscape probes and the
command line: joining and leaving the process group, this process's rank, and the sum over
ranks they all use (a tensor of an nccl group goes through the GPU and comes back).
In one process every function is a no-op.
"""

from __future__ import annotations

import os

import torch


def rank_and_world(group=None) -> tuple[int, int]:
    """(rank, world size) in ``group`` (the default group when None); (0, 1) without an
    initialised process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def all_reduce(t: torch.Tensor, group=None) -> torch.Tensor:
    """The sum of ``t`` over the ranks of ``group`` (the default group when None), on ``t``'s
    device; ``t`` itself in one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or \
            dist.get_world_size(group) == 1:
        return t
    device = t.device
    if dist.get_backend(group) == "nccl" and device.type != "cuda":
        t = t.cuda()
    dist.all_reduce(t, group=group)
    return t.to(device)


def all_sum(values: list[float], group=None) -> list[float]:
    """Numbers summed over ranks (float64); ``values`` as they are in one process."""
    if rank_and_world(group)[1] == 1:
        return values
    return all_reduce(torch.tensor(values, dtype=torch.float64), group).tolist()


def join(device: str, timeout_s: float = 600.0) -> str:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group — nccl on CUDA, gloo on
    CPU — and return this rank's device. A rank that dies makes the others fail after
    ``timeout_s`` (VITPROBE_DIST_TIMEOUT) instead of hanging. The group is destroyed at exit,
    before the interpreter finalises (gloo's threads may otherwise abort a finished rank)."""
    import atexit
    import datetime

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    timeout = float(os.environ.get("VITPROBE_DIST_TIMEOUT", timeout_s))
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo",
                            timeout=datetime.timedelta(seconds=timeout))
    atexit.register(leave)
    return device


def leave() -> None:
    """Destroy the process group if there is one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_group() -> tuple[int, int, object]:
    """(rank, world size, group) — group is None in a single process."""
    import torch.distributed as dist

    rank, world = rank_and_world()
    return rank, world, dist.group.WORLD if world > 1 else None
