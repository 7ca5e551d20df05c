"""Scenario 7 beyond the functional tests (live holder refused, dead holder cleared): two trainers racing
for one run folder at the same instant, a pid reused by an unrelated process, and a garbled lock file."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import psutil
import pytest

from minimind_tui.runs import layout
from minimind_tui.train.lock import RunLocked, TrainerLock

RACES = 20


def _race(run) -> tuple[list[int], list[int]]:
    """Two processes call TrainerLock.acquire at the same instant; the winner holds on until both tried.
    Returns (children, their results: 0 = got the lock, 3 = refused)."""
    gun_r, gun_w = os.pipe()
    res_r, res_w = os.pipe()
    hold_r, hold_w = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            code = 4
            try:
                os.read(gun_r, 1)
                try:
                    TrainerLock(run).acquire()
                    code = 0
                except RunLocked:
                    code = 3
                os.write(res_w, bytes([code]))
                os.close(hold_w)
                os.read(hold_r, 1)  # keep the lock (and stay alive) until the parent has both answers
            finally:
                os._exit(code)
        children.append(pid)
    os.write(gun_w, b"go")
    codes = sorted(os.read(res_r, 1)[0] for _ in range(2))
    for fd in (gun_r, gun_w, res_r, res_w, hold_r, hold_w):
        os.close(fd)  # the last hold_w closes: both children return from read and exit
    for pid in children:
        os.waitpid(pid, 0)
    return children, codes


@pytest.mark.parametrize("start", ["empty folder", "stale lock"])
def test_two_trainers_starting_at_once_exactly_one_wins(tmp_path, measured, start):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    for i in range(RACES):
        run = tmp_path / f"r{i}"
        run.mkdir()
        if start == "stale lock":
            (run / layout.LOCK).write_text(f"{dead} 1.0 {socket.gethostname()}\n")
        children, codes = _race(run)
        assert codes == [0, 3], (i, codes)
    measured.setdefault("7 single writer", []).append(
        f"{RACES}/{RACES} simultaneous starts on {start}: exactly one writer each time")


def test_a_pid_reused_by_another_process_is_a_stale_lock(tmp_path, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = psutil.Process(other.pid).create_time()
        # The lock names a live pid, but one started 100 s after the recorded trainer: not our trainer.
        (tmp_path / layout.LOCK).write_text(f"{other.pid} {started - 100:.3f} {socket.gethostname()}\n")
        lock = TrainerLock(tmp_path).acquire()
        assert lock.held and layout.lock_pid(tmp_path) == os.getpid()
        assert "clearing a stale lock" in capsys.readouterr().out
        lock.release()
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("content", ["", "garbage\n", "12x 3.0 host\n"])
def test_a_garbled_lock_is_cleared(tmp_path, content):
    (tmp_path / layout.LOCK).write_text(content)
    lock = TrainerLock(tmp_path).acquire()
    assert layout.lock_pid(tmp_path) == os.getpid()
    lock.release()
    assert not (tmp_path / layout.LOCK).exists()
