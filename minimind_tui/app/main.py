"""The app factory, shared by the CLI (`run_app`) and the tests (`create_app` with fakes)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .app import RESTART_DELAY_S, MiniMindApp, Services


def create_app(root: Path | str = ".", demo: bool = False, gpu_monitor=None, system_monitor=None, launcher=None,
               clock: Callable[[], float] = time.time, poll_interval: float | None = 0.5,
               gpu_interval: float | None = 2.0, stop_timeout: float = 60.0,
               preload_tabs: bool = True, restart_delay: float = RESTART_DELAY_S) -> MiniMindApp:
    if gpu_monitor is None:
        from minimind_tui.gpu.nvml import NvmlMonitor
        gpu_monitor = NvmlMonitor()
    if system_monitor is None:
        from minimind_tui.gpu.system import SystemMonitor
        system_monitor = SystemMonitor()
    if launcher is None:
        from minimind_tui.runs.launcher import ProcessLauncher
        launcher = ProcessLauncher()
    services = Services(gpu_monitor, system_monitor, launcher, clock, poll_interval, gpu_interval, stop_timeout,
                        preload_tabs, restart_delay)
    return MiniMindApp(Path(root), services, demo=demo)


def run_app(root: Path | str = ".", demo: bool = False) -> int:
    app = create_app(root, demo=demo)
    app.run()
    app.services.gpu_monitor.close()
    return app.return_code or 0
