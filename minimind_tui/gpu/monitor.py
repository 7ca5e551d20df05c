"""What a GPU reading looks like, independent of where it comes from (NVML or a test fake).

Every field is Optional: None means "this one value could not be read" and is shown as N/A, so one
unsupported counter never hides the others."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str | None = None
    mem_used_gb: float | None = None
    mem_total_gb: float | None = None
    util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    # GPU memory held by the trainer's processes; None when NVML cannot show processes (permission,
    # a container's pid namespace, not supported).
    trainer_mem_gb: float | None = None
    error: str | None = None  # the whole GPU failed (e.g. "GPU is lost"); other fields are then None
    # Identity, for finding which cuda:N this GPU is (mapping.py): NVML's index is not CUDA's.
    uuid: str | None = None
    pci_bus_id: str | None = None
    mig_uuids: tuple[str, ...] = ()  # MIG instances carved out of this GPU (CUDA sees them as devices)

    @property
    def free_gb(self) -> float | None:
        if self.mem_used_gb is None or self.mem_total_gb is None:
            return None
        return self.mem_total_gb - self.mem_used_gb


@dataclass(frozen=True)
class GpuReading:
    gpus: tuple[GpuInfo, ...] = ()
    # One line saying why there is no GPU information at all (no library, no driver, no GPU).
    unavailable: str | None = None
    driver: str | None = None
    watching_trainer: bool = False  # trainer pids were given, so trainer_mem_gb means something

    def free_gb(self, count: int = 1) -> float | None:
        """Free memory of the emptiest of the first `count` GPUs' (what one rank can use), or None."""
        frees = [g.free_gb for g in self.gpus[:count]]
        if not frees or any(f is None for f in frees):
            return None
        return min(frees)  # type: ignore[type-var]


class GpuMonitor(Protocol):
    """Anything with read(); called from a worker thread, never the UI thread."""

    def read(self, trainer_pids: Collection[int] = ()) -> GpuReading: ...

    def close(self) -> None: ...
