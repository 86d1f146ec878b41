"""Multi-GPU training with ``torchrun`` (DDP), without global side effects.

``torchrun --nproc_per_node=4 -m trainer.cli train detect ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; ``init_distributed`` reads them and returns a ``DistInfo``. Only rank 0 logs, writes metrics and
saves checkpoints. Checkpoints hold the unwrapped model's state_dict and the epoch, so a run resumes on any number
of processes (the sampler re-shards the same global index sequence).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> tuple[DistInfo, str]:
    """Start the process group when launched by torchrun; returns the info and this process's device."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info, device


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, value):
    """Rank 0's value on every rank (e.g. the validation score that picks the best epoch)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(values: dict[str, float], device: str) -> dict[str, float]:
    """Under DDP, ``values`` averaged over the ranks (the loss of the global batch, as one process would log it;
    torchvision's references reduce their loss dict the same way); unchanged in a single process."""
    if not values or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist(), strict=True))


def shutdown(info: DistInfo) -> None:
    """Tear the process group down on every rank together. Without the barrier, a rank that finishes first (rank
    0 still validating and writing) destroys its gloo group while the peer is active, and the process can abort
    at exit ("terminate called without an active exception"). Called from ``finally``: when an exception is in
    flight, no barrier, since a failed peer would never reach it."""
    if info.enabled and dist.is_initialized():
        if sys.exc_info()[0] is None:
            dist.barrier()
        dist.destroy_process_group()
