"""Scenario 10: NVML fault injection. The dashboard starts in every failure mode (library missing, driver
not loaded, no GPU, one GPU lost, a field not supported, no permission to see processes, processes
invisible inside a container) and shows N/A for the failing cell only; the rest of the app works."""
from __future__ import annotations

import os
import time

import pytest
from testkit import wait_for
from textual.widgets import TabbedContent

from minimind_tui.app.main import create_app
from minimind_tui.app.widgets.gpu_panel import GpuPanel
from minimind_tui.gpu.fake import MODES, FakeGpu, FakeNvml, FakeSystemMonitor
from minimind_tui.gpu.nvml import NvmlMonitor


async def reading_panel(app, pilot) -> GpuPanel:
    """The GPU panel once it holds a reading (the app composes and reads NVML in the background)."""
    await wait_for(pilot, lambda: app.query(GpuPanel) and app.query(GpuPanel).first().gpu is not None,
                   "a reading in the GPU panel")
    return app.query(GpuPanel).first()


async def panel_text(nvml, root) -> str:
    app = create_app(root, gpu_monitor=NvmlMonitor(nvml=nvml), system_monitor=FakeSystemMonitor(),
                     launcher=None, clock=time.time, poll_interval=None, gpu_interval=None, preload_tabs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await reading_panel(app, pilot)
        await pilot.press("alt+2")  # the rest of the app answers
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "runs"
        return panel.render().plain


@pytest.mark.parametrize("mode", MODES)
async def test_dashboard_starts_and_marks_only_the_failing_cells(tmp_path, mode, measured):
    me = os.getpid()
    gpus = [FakeGpu(processes=[(me, 3 << 30)]), FakeGpu(name="NVIDIA A100-SXM4-40GB")]
    text = await panel_text(FakeNvml(gpus, mode=mode), tmp_path)
    lines = text.splitlines()
    if mode in ("library_missing", "driver_not_loaded", "no_gpu"):
        assert len(lines) == 2 and lines[1].startswith("host ")  # one line saying why, then the host
        assert any(w in lines[0] for w in ("NVML", "driver", "GPU")), lines[0]
    elif mode == "gpu_lost":
        assert lines[0].startswith("GPU0 H100") and "N/A" not in lines[0].split("trainer")[0]
        assert lines[1].startswith("GPU1 N/A: ") and "lost" in lines[1].lower()
    elif mode == "not_supported":
        assert "mem 14.0/80.0 GB" in lines[0] and "util N/A" in lines[0] and "N/A W" in lines[0]
    elif mode in ("no_permission", "container_pids"):
        assert "N/A" not in text and "util 97%" in lines[0]
        # The trainer's own memory is the one cell NVML cannot give here: N/A, not an error or a wrong 0.
        reading = NvmlMonitor(nvml=FakeNvml(gpus, mode=mode)).read({me})
        assert reading.gpus[0].trainer_mem_gb is None and reading.gpus[0].mem_used_gb == 14.0
    else:
        assert "N/A" not in text and "util 97%" in lines[0] and "A100" in lines[1]
        assert NvmlMonitor(nvml=FakeNvml(gpus, mode=mode)).read({me}).gpus[0].trainer_mem_gb == 3.0
    measured.setdefault("10 NVML faults", set()).add(mode)


async def test_the_real_nvml_on_a_machine_without_a_driver(tmp_path):
    """Whatever this machine has (here: no NVIDIA driver), the app starts and says so in one line."""
    app = create_app(tmp_path, gpu_monitor=NvmlMonitor(), system_monitor=FakeSystemMonitor(), launcher=None,
                     poll_interval=None, gpu_interval=None, preload_tabs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await reading_panel(app, pilot)
        if panel.gpu.unavailable:
            assert panel.render().plain.count("\n") == 1
