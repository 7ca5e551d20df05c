"""Stop a run: SIGINT to the trainer's process group (the trainer finishes its step, saves and writes an
`end` event), then SIGKILL to the group if it has not exited within the timeout. A stopped (SIGSTOPped,
Ctrl-Z'd) trainer gets SIGCONT first: a stopped process cannot run its handler, so it could only be killed.

The group is the session the launcher created, so torchrun and every rank get the signal. Never signals
the caller's own process group."""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from . import layout, pids
from .launcher import LAUNCHER_PID, launcher_pid

# How long a stop waits for the trainer to save and exit before it kills it (`runs stop`, the dashboard).
STOP_TIMEOUT_S = 60.0
# Written next to the run's files when a stop is requested (and updated if it had to kill), so anyone reading
# the run later can tell a requested stop or kill from a host kill or a crash.
STOP_REQUEST = "stop_request.json"


@dataclass(frozen=True)
class StopOutcome:
    result: str        # "stopped" (exited after SIGINT) | "killed" (needed SIGKILL) | "not_running" | "survived"
    message: str
    seconds: float


def run_pids(run_dir: Path) -> list[int]:
    """The trainer's pid (from its lock) and the launcher's, whichever still run, and all their descendants:
    torchrun starts each rank in a session of its own, which a signal to torchrun's group never reaches.
    A recorded pid counts only while it names the very process that was recorded (start time and host):
    after a restart the number may belong to anything, and that must never be signalled."""
    recorded = [pids.live_pid(Path(run_dir) / name) for name in (layout.LOCK, LAUNCHER_PID)]
    found = list(dict.fromkeys(p for p in recorded if p is not None))
    for pid in list(found):
        try:
            found += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
    return [p for p in dict.fromkeys(found) if pids.alive(p)]


def stop_run(run_dir: Path, timeout: float = STOP_TIMEOUT_S, poll: float = 0.1,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
             progress: Callable[[str], None] | None = None) -> StopOutcome:
    run_dir = Path(run_dir)
    t0 = clock()
    running = run_pids(run_dir)
    if not running:
        return StopOutcome("not_running", f"{run_dir.name}: no running trainer process", 0.0)
    targets = _targets(running)
    graceful = _targets(_ranks_of_torchrun(run_dir, running)) or targets
    _record(run_dir, requested=time.time(), timeout=timeout, result="pending")
    _signal(targets, signal.SIGCONT)  # harmless to a running process; lets a stopped one save
    _signal(graceful, signal.SIGINT)
    if progress:
        progress(f"sent SIGINT to {_describe(graceful)}; waiting up to {timeout:g}s for it to save and exit")
    if _wait_gone(targets, t0 + timeout, poll, clock, sleep):
        return StopOutcome("stopped", f"{run_dir.name} stopped after {clock() - t0:.1f}s", clock() - t0)
    if progress:
        progress(f"still running after {timeout:g}s; sending SIGKILL")
    _record(run_dir, requested=time.time(), timeout=timeout, result="killed")
    _signal(targets, signal.SIGKILL)
    if _wait_gone(targets, clock() + 10.0, poll, clock, sleep):
        return StopOutcome("killed", f"{run_dir.name} did not stop within {timeout:g}s and was killed",
                           clock() - t0)
    return StopOutcome("survived", f"{run_dir.name}: processes {_describe(targets)} survived SIGKILL",
                       clock() - t0)


def _ranks_of_torchrun(run_dir: Path, running: list[int]) -> list[int]:
    """The ranks when the launcher is torchrun and started them in sessions of their own (torch >= 2.x):
    the stop goes to them only. Signalled itself, torchrun would SIGKILL the ranks 30 s later, cutting a
    long final save short; left alone, it exits on its own once the ranks have saved and exited."""
    launcher = launcher_pid(run_dir)
    if launcher is None or launcher not in running:
        return []
    try:
        own = os.getsid(launcher)
        children = psutil.Process(launcher).children()
    except (OSError, psutil.Error):
        return []
    ranks = []
    for child in children:
        try:
            if child.pid in running and os.getsid(child.pid) != own:
                ranks.append(child.pid)
        except OSError:
            continue
    return ranks


def _record(run_dir: Path, **fields) -> None:
    try:
        layout.write_private(Path(run_dir) / STOP_REQUEST, json.dumps(fields))
    except OSError:
        pass  # a read-only or full disk must not prevent the stop itself


def read_stop_request(run_dir: Path) -> dict | None:
    return layout.read_json(Path(run_dir) / STOP_REQUEST)


def _targets(running: list[int]) -> list[tuple[str, int]]:
    """("group", pgid) for pids in their own group, ("pid", pid) for any sharing our group."""
    own = os.getpgid(0)
    targets: list[tuple[str, int]] = []
    for pid in running:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            continue
        target = ("group", pgid) if pgid != own and pgid > 1 else ("pid", pid)
        if target not in targets:
            targets.append(target)
    return targets


def _signal(targets: list[tuple[str, int]], sig: int) -> None:
    for kind, ident in targets:
        try:
            (os.killpg if kind == "group" else os.kill)(ident, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(targets, deadline: float, poll: float, clock, sleep) -> bool:
    while True:
        if not any(_target_alive(t) for t in targets):
            return True
        if clock() >= deadline:
            return False
        sleep(poll)


def _target_alive(target: tuple[str, int]) -> bool:
    kind, ident = target
    if kind == "pid":
        return pids.alive(ident)
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == ident and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _describe(targets) -> str:
    return ", ".join(f"process group {i}" if k == "group" else f"pid {i}" for k, i in targets)
