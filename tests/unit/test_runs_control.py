"""Graceful stop with escalation, on real processes in their own session (like launched trainers)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from testkit import wait_until

from minimind_tui.runs import layout, pids
from minimind_tui.runs.control import stop_run
from minimind_tui.runs.launcher import LAUNCHER_PID

# A trainer stand-in: writes its lock, starts a child (like a torchrun worker or dataloader), then waits.
STUB = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from minimind_tui.runs.pids import record_line
    run, behaviour = sys.argv[1], sys.argv[2]
    ignore_sigint = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", ignore_sigint])
    if behaviour == "graceful":
        def on_int(*_):
            child.kill(); child.wait()
            open(os.path.join(run, "saved"), "w").close()
            sys.exit(0)
        signal.signal(signal.SIGINT, on_int)
    else:  # a save that hangs: SIGINT is ignored
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    open(os.path.join(run, "child"), "w").write(str(child.pid))
    open(os.path.join(run, "trainer.lock"), "w").write(record_line())
    time.sleep(60)
""")


def start(tmp_path, behaviour):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", STUB, str(run), behaviour], start_new_session=True,
                            stdin=subprocess.DEVNULL)
    wait_until(lambda: (run / "trainer.lock").exists() and (run / "trainer.lock").read_text().strip(), 10,
               "the stub's lock", proc=proc)
    child = int((run / "child").read_text())
    return run, proc, child


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_graceful_stop(tmp_path):
    run, proc, child = start(tmp_path, "graceful")
    try:
        notes = []
        outcome = stop_run(run, timeout=30, progress=notes.append)
        assert outcome.result == "stopped" and (run / "saved").exists()
        assert proc.wait(5) == 0 and gone(child)
        assert notes[0].startswith(f"sent SIGINT to process group {proc.pid}")
    finally:
        proc.kill()
        proc.wait()


def test_a_stopped_trainer_is_continued_so_that_it_saves(tmp_path):
    """SIGSTOP (Ctrl-Z, a debugger, a suspended job): without SIGCONT the SIGINT would wait and the stop kill it."""
    run, proc, child = start(tmp_path, "graceful")
    try:
        os.killpg(proc.pid, signal.SIGSTOP)
        for _ in range(500):
            if psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED:
                break
            time.sleep(0.01)
        outcome = stop_run(run, timeout=20)
        assert outcome.result == "stopped" and (run / "saved").exists()
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()


def test_hanging_save_is_killed_after_the_timeout_with_its_whole_group(tmp_path):
    run, proc, child = start(tmp_path, "hang")
    try:
        notes = []
        outcome = stop_run(run, timeout=0.5, progress=notes.append)
        assert outcome.result == "killed" and "did not stop within 0.5s" in outcome.message
        assert proc.wait(5) == -9
        assert gone(child)  # the child that ignores SIGINT went with the group: nothing left behind
        assert "sending SIGKILL" in notes[-1]
    finally:
        proc.kill()
        proc.wait()


def test_nothing_running(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    assert stop_run(run).result == "not_running"


def test_never_signals_our_own_process_group(tmp_path):
    """A trainer sharing our group (started from this shell without a new session) gets a pid signal only."""
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    # Same group as pytest. It says when it sleeps: a SIGINT during start-up ends it with status 1, not by SIGINT.
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    received, notes = [], []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(signal.SIGINT))  # a group signal lands here
    try:
        (run / "trainer.lock").write_text(str(proc.pid))
        outcome = stop_run(run, timeout=10, progress=notes.append)
        assert outcome.result == "stopped" and proc.wait(5) == -signal.SIGINT  # SIGINT's default ended it
    finally:
        signal.signal(signal.SIGINT, previous)
        proc.kill()
        proc.wait()
    assert received == [] and notes[0].startswith(f"sent SIGINT to pid {proc.pid};")


def test_a_kill_after_a_stop_request_is_reported_as_such(tmp_path):
    from minimind_tui.runs.summary import summarize

    run, proc, child = start(tmp_path, "hang")
    try:
        stop_run(run, timeout=0.3)
        proc.wait(5)
        s = summarize(run)
        assert s.status == "killed" and "a stop was requested and it had not exited after 0s" in s.reason
    finally:
        proc.kill()
        proc.wait()


def _victim():
    """An unrelated process in a session of its own: SIGINT (its default action) would end it."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                            stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("record", ["other start", "other host", "old format, written before it started"])
def test_a_recorded_pid_that_now_names_another_process_is_never_signalled(tmp_path, record):
    """PID reuse: after a restart the trainer's pid belongs to an unrelated process. `runs stop` (and the
    dashboard's Stop, which calls the same function) must leave it alone, and the run reads as dead."""
    from minimind_tui.runs.summary import summarize

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    victim = _victim()
    try:
        started = psutil.Process(victim.pid).create_time()
        text = {"other start": f"{victim.pid} {started - 3600:.3f} {socket.gethostname()}\n",
                "other host": f"{victim.pid} {started:.3f} another-host\n",
                "old format, written before it started": f"{victim.pid}\n"}[record]
        for name in (layout.LOCK, LAUNCHER_PID):
            (run / name).write_text(text)
            os.utime(run / name, (started - 3600, started - 3600))
        assert pids.live_pid(run / layout.LOCK) is None
        assert stop_run(run, timeout=5).result == "not_running"
        assert victim.poll() is None  # not signalled: still running
        assert not summarize(run).is_live
    finally:
        victim.kill()
        victim.wait()


def test_the_recorded_process_itself_is_live(tmp_path):
    victim = _victim()
    try:
        (tmp_path / layout.LOCK).write_text(pids.record_line(victim.pid))
        assert pids.live_pid(tmp_path / layout.LOCK) == victim.pid
    finally:
        victim.kill()
        victim.wait()
    assert pids.live_pid(tmp_path / layout.LOCK) is None  # gone (reaped): the record is stale
