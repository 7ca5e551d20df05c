"""Scenario 6: the SSH connection drops. The real dashboard runs in a pseudo-terminal and launches a run
from its Train form; the terminal is hung up: the dashboard exits (nothing of its session is left), the
trainer keeps stepping, and a new dashboard reattaches to the live run. Also scenario 14's socket check
for the dashboard process."""
from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import psutil
import pytest
from reliability_kit import group_members, kill_group, listening_sockets
from testkit import cli_env, monitor_summary, steps, wait_for, wait_until

from minimind_tui.app.main import create_app
from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor
from minimind_tui.runs import layout
from minimind_tui.runs.control import stop_run
from minimind_tui.runs.launcher import ProcessLauncher, launcher_pid

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("dashboard_in_terminal.py")


def start_in_pty(root: Path, data: Path) -> tuple[int, int, list[bytes]]:
    env = {**cli_env(), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    pid, master = pty.fork()
    if pid == 0:  # the child: a login shell's place, session leader of the terminal
        # A login shell starts with SIGHUP at its default (death on hang-up); a test run under `nohup` would
        # otherwise hand its "ignore" down through exec, and the dashboard would outlive its terminal.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.execve(sys.executable, [sys.executable, str(DRIVER), str(root), str(data)], env)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    screen: list[bytes] = []

    def drain():  # a terminal that is never read blocks its writer; ssh would read it
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.append(chunk)
    threading.Thread(target=drain, daemon=True).start()
    return pid, master, screen


def exited(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return status if done else None


async def test_hangup_keeps_the_run_and_a_new_dashboard_reattaches(tmp_path, corpus, measured):
    root = tmp_path / "proj"
    root.mkdir()
    dash, master, screen = start_in_pty(root, corpus["pretrain"])
    trainer_group = None
    try:
        run = wait_until(lambda: next(iter((root / "runs").glob("*/")), None) if (root / "runs").is_dir() else None,
                         180, "the dashboard to launch a run")
        trainer_group = wait_until(lambda: launcher_pid(run), 30, "launcher.pid")
        wait_until(lambda: len(steps(run)) >= 3, 180, "the trainer's first steps")
        assert listening_sockets(dash) == [] and listening_sockets(trainer_group) == []  # 14: no network port
        assert os.getsid(trainer_group) != os.getsid(dash)  # the trainer has its own session

        os.close(master)  # the SSH connection drops: the terminal hangs up
        t0 = time.monotonic()
        status = wait_until(lambda: exited(dash), 30, "the dashboard to exit on hang-up")
        exit_s = time.monotonic() - t0
        session, dash = dash, None  # pty.fork made the dashboard the leader of the terminal's session
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        leftovers = [p.pid for p in psutil.process_iter(["status"])
                     if _sid(p.pid) == session and p.info["status"] != psutil.STATUS_ZOMBIE]
        assert leftovers == []  # no orphan of the dashboard's session survives the hang-up

        # The trainer goes on stepping after the hang-up.
        after = steps(run)[-1]["step"]
        wait_until(lambda: steps(run)[-1]["step"] >= after + 5, 60, "steps after the hang-up")
        assert group_members(trainer_group) and layout.is_alive(run)

        # A new dashboard (headless) finds the live run and streams it.
        t1 = time.monotonic()
        app = create_app(root, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(),
                         launcher=ProcessLauncher(), poll_interval=0.2, gpu_interval=None,
                         preload_tabs=False)  # what is tested is the reattach, not the tab preload
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: monitor_summary(app) and monitor_summary(app).status == "live", "reattach")
            reattach_s = time.monotonic() - t1
            first = monitor_summary(app)
            assert first.run_id == run.name and app.selected_run == run
            # Streaming, not a snapshot: later steps arrive.
            await wait_for(pilot, lambda: monitor_summary(app).step > first.step, "a later step")
        outcome = stop_run(run, timeout=60)
        assert outcome.result == "stopped" and group_members(trainer_group) == []
        measured["6 SSH drop"] = (f"dashboard exited ({how}) {exit_s:.2f} s after hang-up, 0 processes left in its "
                                  f"session; trainer stepped on "
                                  f"(from step {after}); new dashboard showed the live run in {reattach_s:.2f} s")
    finally:
        if dash:
            os.kill(dash, signal.SIGKILL)
            os.waitpid(dash, 0)
        if trainer_group:
            kill_group(trainer_group)


def _sid(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None

