"""Processes named in a run directory (trainer.lock, launcher.pid): is the recorded process still running?

A pid alone is not an identity: after the trainer dies (a container restart, a reboot) the kernel hands the
same number to an unrelated process. So every record holds "PID START_TIME HOST", and a record names a
running process only when a process with that pid runs on this host AND started at the recorded time. Anything
that signals or trusts a recorded pid asks `live_pid` first; a stale record reads as dead.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

# create_time is derived from boot time and clock ticks; the same process reads the same within a boot.
SAME_START_S = 1.0


def alive(pid: int) -> bool:
    """A running process has this pid. A zombie (exited, not yet reaped by its parent, e.g. a trainer the
    dashboard started and a host kill ended) is not running; one we may not inspect is."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False


def start_time(pid: int) -> float | None:
    """When the running process `pid` started (seconds since the epoch), or None when there is none."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


def record_line(pid: int | None = None) -> str:
    """What a pid file holds: "PID START_TIME HOST" (START_TIME 0 when the process is already gone)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid} {start_time(pid) or 0:.3f} {socket.gethostname()}\n"


@dataclass(frozen=True)
class Recorded:
    pid: int
    started: float | None   # None in records written before start times were kept
    host: str | None
    written: float | None   # the record's mtime: stands in for the start time of an old record

    @property
    def here(self) -> bool:
        return self.host is None or self.host == socket.gethostname()

    def running(self) -> bool:
        """The recorded process itself still runs on this host (not a later process that got its pid)."""
        if not self.here:
            return False
        started = start_time(self.pid)
        if started is None:
            return False
        if self.started is not None:
            return abs(started - self.started) < SAME_START_S
        # An old record without a start time: its process existed when the file was written.
        return self.written is None or started <= self.written + SAME_START_S


def parse(text: str, written: float | None = None) -> Recorded | None:
    """A record from a pid file's text; None when it holds no pid."""
    parts = text.split()
    try:
        pid = int(parts[0])
    except (IndexError, ValueError):
        return None
    try:
        started = float(parts[1]) if len(parts) > 1 else None
    except ValueError:
        started = None
    return Recorded(pid, started, parts[2] if len(parts) > 2 else None, written)


def read_record(path: Path) -> Recorded | None:
    """The record in a pid file; None when it is missing or holds no pid."""
    try:
        text = Path(path).read_text()
        written = Path(path).stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    return parse(text, written)


def live_pid(path: Path) -> int | None:
    """The pid in a pid file if that very process still runs here; None for a missing or stale record."""
    record = read_record(path)
    return record.pid if record is not None and record.running() else None
