"""GPU and host readings for the dashboard: NVML behind a small interface, a fake for tests, psutil for CPU/RAM.
No textual, no torch here."""
from .monitor import GpuInfo, GpuMonitor, GpuReading
from .nvml import NvmlMonitor
from .system import SystemMonitor, SystemReading

__all__ = ["GpuInfo", "GpuMonitor", "GpuReading", "NvmlMonitor", "SystemMonitor", "SystemReading"]
