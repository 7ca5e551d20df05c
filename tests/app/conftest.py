"""Fixtures for dashboard tests: an app with every source of nondeterminism injected (GPU, host, launcher,
clock, no polling timers), and a bounded wait instead of sleeps."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from canned import T0

from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor, one_gpu
from minimind_tui.runs.launcher import Launched
from minimind_tui.runs.layout import create_run_dir


class FakeLauncher:
    """Records what would be launched; creates the run dir like the real one, starts nothing."""

    def __init__(self):
        self.launched: list[tuple[str, list[str], int]] = []
        self.resumed: list[tuple[Path, str, int]] = []
        self.codes: dict[Path, int] = {}

    def launch(self, root, mode, train_args, gpus=1):
        self.launched.append((mode, list(train_args), gpus))
        run_dir = create_run_dir(root, mode, T0)
        (run_dir / "launcher.pid").write_text(f"{os.getpid()}\n")  # "running": this test process
        return Launched(run_dir, os.getpid(), ["fake"])

    def resume(self, root, run_dir, mode, gpus=1):
        self.resumed.append((Path(run_dir), mode, gpus))
        return Launched(Path(run_dir), os.getpid(), ["fake"])

    def exit_code(self, run_dir):
        return self.codes.get(Path(run_dir))


@pytest.fixture
def fake_launcher():
    return FakeLauncher()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "dataset").mkdir(parents=True)
    (root / "dataset" / "sft_mini_512.jsonl").write_text(
        '{"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}\n' * 3,
        encoding="utf-8")
    return root


@pytest.fixture
def make_app(project, fake_launcher):
    from minimind_tui.app.main import create_app

    def make(root=None, gpu=None, system=None, **kwargs):
        return create_app(root or project, gpu_monitor=gpu or FakeGpuMonitor(one_gpu()),
                          system_monitor=system or FakeSystemMonitor(), launcher=kwargs.pop("launcher", fake_launcher),
                          clock=kwargs.pop("clock", lambda: T0), poll_interval=None, gpu_interval=None,
                          preload_tabs=kwargs.pop("preload_tabs", False), **kwargs)  # tabs build when shown
    return make
