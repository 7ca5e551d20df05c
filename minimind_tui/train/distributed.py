"""torchrun / DDP helpers. Single-process runs go through the same functions with world size 1.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; we use NCCL on CUDA and Gloo on CPU. Only rank 0 writes
to the run directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from minimind_tui.errors import UserError

# Ranks wait in a collective while rank 0 tokenises a large dataset once; allow for that.
COLLECTIVE_TIMEOUT = timedelta(minutes=90)


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this node

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: str) -> tuple[DistInfo, str]:
    """Join the process group when started by torchrun; returns the info and this rank's device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistInfo(), use_device(device)
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]),
                    int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    if device.startswith("cuda"):
        device = rank_device(info)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT)
    else:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    return info, device


def _visible_note() -> str:
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f" (CUDA_VISIBLE_DEVICES={cvd})" if cvd is not None else ""


def use_device(device: str) -> str:
    """A single process's device, made current: otherwise a stray CUDA context lands on GPU 0 as well."""
    if not device.startswith("cuda"):
        return device
    index = torch.device(device).index or 0
    visible = torch.cuda.device_count()
    if index >= visible:
        raise UserError(f"--device {device}: this process sees {visible} GPU(s){_visible_note()}, "
                        f"numbered cuda:0 to cuda:{visible - 1}; pick one of those")
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def rank_device(info: DistInfo) -> str:
    """cuda:LOCAL_RANK, checked: more processes per node than visible GPUs (or a CUDA_VISIBLE_DEVICES of
    its own per process) would otherwise end in CUDA's bare "invalid device ordinal"."""
    visible = torch.cuda.device_count()
    if info.local_rank >= visible:
        raise UserError(f"{info.local_world_size} processes per node, but local rank {info.local_rank} sees "
                        f"{visible} GPU(s){_visible_note()}; start at most {visible} per node "
                        f"(--nproc_per_node {visible}) and give every process the same CUDA_VISIBLE_DEVICES")
    return f"cuda:{info.local_rank}"


def sum_across(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_across(flag: bool, info: DistInfo, device) -> bool:
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
