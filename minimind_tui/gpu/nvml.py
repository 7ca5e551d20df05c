"""GPU readings from NVML through `pynvml` (package nvidia-ml-py).

The module object is injectable so tests drive this very code with a fake NVML in every failure mode.
Each NVML call is wrapped on its own: one failing counter yields None (N/A) for that cell only."""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from minimind_tui.runs.pids import alive as _pid_exists

from .monitor import GpuInfo, GpuReading

GB = 1024**3


def _load_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; imported lazily so a missing package is a reading, not a crash
    return pynvml


class NvmlMonitor:
    def __init__(self, nvml: Any | None = None, pid_exists: Callable[[int], bool] | None = None):
        self._nvml = nvml
        self._ready = False
        self._unavailable: str | None = None
        self._pid_exists = pid_exists or _pid_exists
        self._identity: dict[int, tuple] = {}  # index -> (uuid, PCI bus id, MIG UUIDs): read once

    def _init(self) -> str | None:
        """Initialise NVML once; returns the reason it cannot be used, or None."""
        if self._ready:
            return None
        if self._nvml is None:
            try:
                self._nvml = _load_pynvml()
            except ImportError:
                return "no GPU information: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
        try:
            self._nvml.nvmlInit()
        except Exception as e:  # NVMLError subclasses: library not found, driver not loaded, ...
            return f"no GPU information (NVML: {_reason(e)})"
        self._ready = True
        return None

    def read(self, trainer_pids: Collection[int] = ()) -> GpuReading:
        reason = self._init()
        if reason:
            return GpuReading(unavailable=reason)
        nv = self._nvml
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception as e:
            return GpuReading(unavailable=f"no GPU information (NVML: {_reason(e)})")
        if count == 0:
            return GpuReading(unavailable="no GPU found by NVML")
        driver = _try(lambda: _text(nv.nvmlSystemGetDriverVersion()))
        pids = set(trainer_pids)
        return GpuReading(gpus=tuple(self._read_one(i, pids) for i in range(count)), driver=driver,
                          watching_trainer=bool(pids))

    def _read_one(self, index: int, pids: set[int]) -> GpuInfo:
        nv = self._nvml
        try:
            h = nv.nvmlDeviceGetHandleByIndex(index)
        except Exception as e:
            return GpuInfo(index=index, error=_reason(e))
        mem = _try(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        power_mw = _try(lambda: nv.nvmlDeviceGetPowerUsage(h))
        limit_mw = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        uuid, pci_bus_id, mig_uuids = self._identity_of(index, h)
        return GpuInfo(
            index=index, uuid=uuid, pci_bus_id=pci_bus_id, mig_uuids=mig_uuids,
            name=_try(lambda: _text(nv.nvmlDeviceGetName(h))),
            mem_used_gb=mem.used / GB if mem is not None else None,
            mem_total_gb=mem.total / GB if mem is not None else None,
            util_pct=float(util.gpu) if util is not None else None,
            temp_c=_try(lambda: float(nv.nvmlDeviceGetTemperature(h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))),
            power_w=power_mw / 1000 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
            trainer_mem_gb=self._trainer_mem(h, pids),
        )

    def cuda_driver_version(self) -> str | None:
        """The newest CUDA version the installed driver supports ("12.4"), or None when NVML cannot say."""
        if self._init():
            return None
        version = _try(self._nvml.nvmlSystemGetCudaDriverVersion)  # e.g. 12040
        return f"{version // 1000}.{version % 1000 // 10}" if isinstance(version, int) and version > 0 else None

    def _identity_of(self, index: int, handle: Any) -> tuple:
        """UUID, PCI bus id and MIG instance UUIDs: they do not change while the driver is loaded, so they are
        read once (a failed read is retried at the next poll)."""
        if index in self._identity:
            return self._identity[index]
        nv = self._nvml
        uuid = _try(lambda: _text(nv.nvmlDeviceGetUUID(handle)))
        pci = _try(lambda: _text(nv.nvmlDeviceGetPciInfo(handle).busId).upper())
        found = (uuid, pci, self._mig_uuids(handle))
        if uuid is not None and pci is not None:
            self._identity[index] = found
        return found

    def _mig_uuids(self, handle: Any) -> tuple[str, ...]:
        nv = self._nvml
        uuids = []
        for i in range(_try(lambda: nv.nvmlDeviceGetMaxMigDeviceCount(handle)) or 0):
            mig = _try(lambda i=i: nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, i))  # absent slots raise
            uuid = mig is not None and _try(lambda mig=mig: _text(nv.nvmlDeviceGetUUID(mig)))
            if uuid:
                uuids.append(uuid)
        return tuple(uuids)

    def _trainer_mem(self, handle: Any, pids: set[int]) -> float | None:
        procs = _try(lambda: self._nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        if procs is None:
            return None  # not supported / no permission
        if not pids:
            return 0.0
        if procs and not any(self._pid_exists(p.pid) for p in procs):
            # NVML lists host pids; inside a container none of them exist here, so we cannot tell whose
            # memory it is. Say N/A rather than a misleading 0.
            return None
        used = [p.usedGpuMemory for p in procs if p.pid in pids]
        if any(u is None for u in used):
            return None  # the driver hides per-process memory (e.g. under MIG or without permission)
        return sum(used) / GB

    def close(self) -> None:
        if self._ready:
            _try(self._nvml.nvmlShutdown)
            self._ready = False


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__

