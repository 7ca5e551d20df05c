"""torchrun / DDP helpers. Single-process runs go through the same functions with world size 1.

torchrun sets RANK, LOCAL_RANK, LOCAL_WORLD_SIZE and WORLD_SIZE. Two process groups:
  the default group  NCCL on CUDA (Gloo on CPU): DDP's gradient all-reduce, with a short timeout, so a
                     wedged rank ends the run in minutes instead of holding every GPU for an hour and a half.
  info.control       Gloo, long timeout: object collectives, host-side sums and flags, and the long waits
                     (rank 0 tokenising the data, a save). Ranks waiting there leave their GPU idle rather than
                     spinning in an NCCL kernel, so the stall watchdog sees what is going on.
Only rank 0 writes to the run directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from minimind_tui.errors import UserError

# A training collective finishes in well under a second unless a rank is stuck.
TRAINING_TIMEOUT = timedelta(minutes=10)
# Ranks wait on the control group while rank 0 tokenises a large dataset once; allow for that.
CONTROL_TIMEOUT = timedelta(minutes=90)


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this node
    control: Any = field(default=None, repr=False, compare=False)  # the Gloo group (None: single process)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def node_leader(self) -> int:
        """Global rank of local rank 0 on this node (torchrun numbers each node's ranks consecutively)."""
        return self.rank - self.local_rank


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
        # device_id binds the communicator to this rank's GPU now instead of at the first collective.
        dist.init_process_group("nccl", timeout=TRAINING_TIMEOUT, device_id=torch.device(device))
    else:
        dist.init_process_group("gloo", timeout=TRAINING_TIMEOUT)
    info.control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
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


def host_sum(values: list[float], info: DistInfo) -> list[float]:
    """Numbers this process already holds, summed over all ranks through the control group: no GPU involved."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=info.control)
    return t.tolist()


def host_any(flags: list[bool], info: DistInfo) -> list[bool]:
    """Each flag set on any rank (e.g. "stop requested"), through the control group."""
    if not info.enabled:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=info.control)
    return [v > 0 for v in t.tolist()]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier(group=info.control)


def gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj, group=info.control)
    return out


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=info.control)
    return box[0]


def shutdown(info: DistInfo) -> None:
    """Tear the groups down together. A rank that destroys its groups while another is still in its last
    collectives can abort in Gloo's teardown ("terminate called without an active exception", seen with LoRA
    runs on two CPU processes), so the ranks first meet on the control group; a rank that died is waited for
    only briefly (monitored_barrier names it and raises, and teardown goes on)."""
    if not (info.enabled and dist.is_initialized()):
        return
    if info.control is not None:
        try:
            dist.monitored_barrier(group=info.control, timeout=timedelta(seconds=30))
        except Exception:  # noqa: BLE001 - a missing rank: it has said why; tear down regardless
            pass
    dist.destroy_process_group()
