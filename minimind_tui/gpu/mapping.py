"""Which NVML GPU is `cuda:N`. Torch-free: the dashboard uses it, and so does `doctor` where torch cannot tell.

NVML numbers every GPU of the machine in PCI bus order. CUDA numbers only the devices a process may use:
those CUDA_VISIBLE_DEVICES lists, in the order listed, or all of them when it is unset; and its own order is
"fastest first" unless CUDA_DEVICE_ORDER=PCI_BUS_ID. An entry of CUDA_VISIBLE_DEVICES is an index (in that
order), a GPU UUID (`GPU-...`, a unique prefix is enough) or a MIG instance (`MIG-<uuid>`, or the older
`MIG-GPU-<uuid>/gi/ci`); CUDA stops reading the list at the first entry it cannot use.

Runs the dashboard starts get CUDA_DEVICE_ORDER=PCI_BUS_ID (runs/launcher.py), so for them the mapping below
is exact; for other processes it is exact when the GPUs are all alike or named by UUID.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .monitor import GpuInfo, GpuReading

PCI_ORDER = "PCI_BUS_ID"


@dataclass(frozen=True)
class CudaDevice:
    ordinal: int            # N in cuda:N
    gpu: GpuInfo | None     # the NVML GPU (for a MIG instance, the GPU it is part of); None: NVML does not show it
    entry: str | None       # the CUDA_VISIBLE_DEVICES entry that names it; None when the variable is unset
    mig: bool = False       # a MIG instance: memory and utilisation readings are the whole GPU's


def visible_entries(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as its entries; None when unset (every GPU), [] when set but empty (none)."""
    if value is None:
        return None
    entries = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            break  # CUDA reads no further than an empty entry
        entries.append(entry)
    return entries


def pci_ordered(gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
    """NVML's GPUs in PCI bus order (NVML's own order in practice; sorted when bus ids are known)."""
    if all(g.pci_bus_id for g in gpus):
        return sorted(gpus, key=lambda g: g.pci_bus_id or "")
    return list(gpus)


def cuda_devices(reading: GpuReading, env: Mapping[str, str] | None = None) -> list[CudaDevice]:
    """cuda:0, cuda:1, ... as a process started with `env` (default: this one's) numbers them."""
    env = os.environ if env is None else env
    gpus = pci_ordered(reading.gpus)
    entries = visible_entries(env.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        return [CudaDevice(i, g, None) for i, g in enumerate(gpus)]
    devices: list[CudaDevice] = []
    for entry in entries:
        found = _resolve(entry, gpus)
        if found is None:
            break  # an entry CUDA cannot use: it ignores the rest of the list
        gpu, mig = found
        devices.append(CudaDevice(len(devices), gpu, entry, mig))
    return devices


def order_is_certain(reading: GpuReading, env: Mapping[str, str] | None = None) -> bool:
    """False when CUDA's "fastest first" order could differ from PCI order: unlike GPUs, numbered by index."""
    env = os.environ if env is None else env
    if env.get("CUDA_DEVICE_ORDER") == PCI_ORDER or len({g.name for g in reading.gpus}) <= 1:
        return True
    entries = visible_entries(env.get("CUDA_VISIBLE_DEVICES"))
    return entries is not None and all(not e.lstrip("-").isdigit() for e in entries)


def gpu_of(reading: GpuReading, ordinal: int, env: Mapping[str, str] | None = None) -> GpuInfo | None:
    devices = cuda_devices(reading, env)
    return devices[ordinal].gpu if 0 <= ordinal < len(devices) else None


def free_gb_of(reading: GpuReading, ordinals: Sequence[int], env: Mapping[str, str] | None = None) -> float | None:
    """Free memory of the emptiest of these cuda:N (what each rank can use); None when any is unknown."""
    return _smallest(reading, ordinals, env, "free_gb")


def total_gb_of(reading: GpuReading, ordinals: Sequence[int], env: Mapping[str, str] | None = None) -> float | None:
    """Memory of the smallest of these cuda:N (it sets the trainer's default chunk budget); None if unknown."""
    return _smallest(reading, ordinals, env, "mem_total_gb")


def _smallest(reading: GpuReading, ordinals: Sequence[int], env: Mapping[str, str] | None, field: str):
    devices = cuda_devices(reading, env)
    values = [getattr(devices[n].gpu, field) if 0 <= n < len(devices) and devices[n].gpu else None
              for n in ordinals]
    if not values or any(v is None for v in values):
        return None
    return min(v for v in values if v is not None)


def _resolve(entry: str, gpus: list[GpuInfo]) -> tuple[GpuInfo | None, bool] | None:
    """(GPU or None when NVML cannot tell, is a MIG instance), or None for an entry CUDA would reject."""
    if entry.lstrip("-").isdigit():
        index = int(entry)
        return (gpus[index], False) if 0 <= index < len(gpus) else None
    key = entry.lower()
    if key.startswith("mig-gpu-"):  # MIG-GPU-<parent uuid>/gi/ci (drivers before R470)
        parent = _by_uuid_prefix(key[len("mig-"):].split("/")[0], gpus)
        return parent, True
    if key.startswith("mig-"):
        return next((g for g in gpus if any(u.lower() == key for u in g.mig_uuids)), None), True
    if key.startswith("gpu-"):
        if all(g.uuid for g in gpus):
            gpu = _by_uuid_prefix(key, gpus)
            return (gpu, False) if gpu is not None else None
        return None, False  # some UUIDs unreadable: a GPU CUDA sees, but which one we cannot say
    return None


def _by_uuid_prefix(prefix: str, gpus: list[GpuInfo]) -> GpuInfo | None:
    matches = [g for g in gpus if g.uuid and g.uuid.lower().startswith(prefix)]
    return matches[0] if len(matches) == 1 else None
