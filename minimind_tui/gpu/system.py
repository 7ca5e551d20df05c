"""Host CPU/RAM and the trainer's own CPU/RSS via psutil. Called from a worker thread."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class SystemReading:
    cpu_pct: float
    cpu_count: int
    ram_used_gb: float
    ram_total_gb: float
    trainer_cpu_pct: float | None = None   # summed over the trainer's processes (can exceed 100)
    trainer_rss_gb: float | None = None
    trainer_pids: tuple[int, ...] = ()      # the roots and all their descendants (torchrun workers)


class SystemMonitor:
    def __init__(self):
        # psutil's cpu_percent compares with the previous call on the same Process object, so keep them.
        self._procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(interval=None)

    def read(self, root_pids: Collection[int] = ()) -> SystemReading:
        vm = psutil.virtual_memory()
        procs = self._tree(root_pids)
        cpu = rss = 0.0
        for p in procs:
            try:
                with p.oneshot():
                    cpu += p.cpu_percent(interval=None)
                    rss += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return SystemReading(
            cpu_pct=psutil.cpu_percent(interval=None), cpu_count=psutil.cpu_count() or 1,
            ram_used_gb=(vm.total - vm.available) / 1024**3, ram_total_gb=vm.total / 1024**3,
            trainer_cpu_pct=cpu if procs else None, trainer_rss_gb=rss / 1024**3 if procs else None,
            trainer_pids=tuple(sorted(p.pid for p in procs)))

    def _tree(self, root_pids: Collection[int]) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in root_pids:
            try:
                root = self._procs.get(pid) or psutil.Process(pid)
                for p in [root, *root.children(recursive=True)]:
                    found[p.pid] = self._procs.get(p.pid) or p
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self._procs = found
        return list(found.values())
