"""Test doubles: a fake `pynvml` module that fails in any chosen way, and a monitor returning fixed readings.

FakeNvml raises pynvml's own error classes, so NvmlMonitor's real code path is what the tests exercise."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from types import SimpleNamespace

from .monitor import GpuInfo, GpuReading

GB = 1024**3

# Failure modes a test can ask for (issue: reliability scenario 10).
MODES = ("ok", "library_missing", "driver_not_loaded", "no_gpu", "gpu_lost", "not_supported", "no_permission",
         "container_pids")


def _error(code_name: str) -> Exception:
    import pynvml
    return pynvml.NVMLError(getattr(pynvml, code_name))


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    used: int = 14 * GB
    total: int = 80 * GB
    util: int = 97
    temp: int = 61
    power_mw: int = 412_000
    limit_mw: int = 700_000
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes or None)
    uuid: str | None = None        # None: FakeNvml gives "GPU-0000000N-..." from the GPU's place in its list
    pci_bus_id: str | None = None  # None: "00000000:NN:00.0", bus number = place in the list (PCI order)
    mig: list[str] = field(default_factory=list)  # UUIDs of MIG instances carved out of this GPU


class FakeNvml:
    """Looks like the parts of `pynvml` NvmlMonitor uses.

    mode: one of MODES. `lost` lists GPU indexes that report "GPU is lost"; `unsupported` lists
    field names ("temp", "power", "util", "mem", "name", "processes", "uuid", "pci", "mig") that raise
    NotSupported."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[FakeGpu] | None = None, mode: str = "ok", lost: Collection[int] = (),
                 unsupported: Collection[str] = (), driver: str = "550.54.15", cuda_version: int = 12040):
        assert mode in MODES, mode
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        for i, g in enumerate(self.gpus):
            g.uuid = g.uuid or f"GPU-{i:08x}-1111-2222-3333-444444444444"
            g.pci_bus_id = g.pci_bus_id or f"00000000:{0x10 + i:02X}:00.0"
        self.mode = mode
        self.lost = set(lost) | ({len(self.gpus) - 1} if mode == "gpu_lost" else set())
        self.unsupported = set(unsupported) | (
            {"temp", "power", "util", "processes"} if mode == "not_supported" else set())
        self.init_calls = 0
        self.driver, self.cuda_version = driver, cuda_version

    def nvmlInit(self):
        self.init_calls += 1
        if self.mode == "library_missing":
            raise _error("NVML_ERROR_LIBRARY_NOT_FOUND")
        if self.mode == "driver_not_loaded":
            raise _error("NVML_ERROR_DRIVER_NOT_LOADED")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 0 if self.mode == "no_gpu" else len(self.gpus)

    def nvmlSystemGetDriverVersion(self):
        return self.driver.encode()  # old pynvml returned bytes; the monitor accepts both

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda_version  # 12040 = CUDA 12.4, what driver 550 supports

    def nvmlDeviceGetHandleByIndex(self, i):
        if i in self.lost:
            raise _error("NVML_ERROR_GPU_IS_LOST")
        return i

    def _field(self, h, name):
        if name in self.unsupported:
            raise _error("NVML_ERROR_NOT_SUPPORTED")
        return self.gpus[h]

    def nvmlDeviceGetName(self, h):
        return self._field(h, "name").name

    def nvmlDeviceGetUUID(self, h):
        if isinstance(h, tuple):  # a MIG instance's handle
            return self.gpus[h[0]].mig[h[1]]
        return self._field(h, "uuid").uuid

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._field(h, "pci").pci_bus_id.encode())  # bytes, as old pynvml returns

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7 if self._field(h, "mig").mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        if i >= len(self.gpus[h].mig):
            raise _error("NVML_ERROR_NOT_FOUND")
        return (h, i)

    def nvmlDeviceGetMemoryInfo(self, h):
        g = self._field(h, "mem")
        return SimpleNamespace(used=g.used, total=g.total, free=g.total - g.used)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self._field(h, "util").util, memory=0)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._field(h, "temp").temp

    def nvmlDeviceGetPowerUsage(self, h):
        return self._field(h, "power").power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._field(h, "power").limit_mw

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if self.mode == "no_permission":
            raise _error("NVML_ERROR_NO_PERMISSION")
        g = self._field(h, "processes")
        if self.mode == "container_pids":
            return [SimpleNamespace(pid=4_000_000 + i, usedGpuMemory=m) for i, (_, m) in enumerate(g.processes)]
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in g.processes]


class FakeGpuMonitor:
    """Returns a fixed reading (or the next of a list); records the trainer pids it was asked about."""

    def __init__(self, *readings: GpuReading):
        self.readings = list(readings) or [GpuReading(unavailable="no GPU found by NVML")]
        self.asked_pids: list[set[int]] = []

    def read(self, trainer_pids: Collection[int] = ()) -> GpuReading:
        self.asked_pids.append(set(trainer_pids))
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def close(self) -> None:
        pass


def one_gpu(used_gb: float = 14.0, total_gb: float = 20.0, trainer_gb: float | None = 12.5) -> GpuReading:
    return GpuReading(gpus=(GpuInfo(0, "NVIDIA RTX 4000 Ada", used_gb, total_gb, 97.0, 61.0, 120.0, 130.0,
                                    trainer_gb),), driver="550.54.15", watching_trainer=trainer_gb is not None)


class FakeSystemMonitor:
    """Fixed host readings, so snapshots do not depend on this machine's load."""

    def __init__(self, reading=None):
        from .system import SystemReading
        self.reading = reading or SystemReading(cpu_pct=12.0, cpu_count=16, ram_used_gb=21.5, ram_total_gb=125.8)
        self.asked_pids: list[set[int]] = []

    def read(self, root_pids: Collection[int] = ()):
        self.asked_pids.append(set(root_pids))
        return self.reading
