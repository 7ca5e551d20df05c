"""Shared helpers for the reliability scenarios: a tiny model, the trainer in-process or as a detached
process, bounded waits (no sleeps that assume a speed), and finding every process a run left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from testkit import TINY as _TINY
from testkit import train_here  # noqa: F401  (the scenarios import it from here)

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all

TINY = [*_TINY, "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[2]


def cache_env(tmp_path_factory) -> dict:
    """For module-scoped fixtures, which run outside the autouse per-test cache isolation: keep token
    caches in the session's temporary folder, never the user's ~/.cache."""
    return {"MINIMIND_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


def cli_env(extra: dict | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def start_cli(cwd: Path, *args: str, env: dict | None = None, umask: int | None = None) -> subprocess.Popen:
    """`python -m minimind_tui ARGS` in its own session, as the dashboard's launcher starts it."""
    def pre():
        if umask is not None:
            os.umask(umask)
    return subprocess.Popen([sys.executable, "-m", "minimind_tui", *args], cwd=cwd, env=cli_env(env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=pre)


def events(run_dir: Path) -> list[dict]:
    return read_all(Path(run_dir) / layout.METRICS) if (Path(run_dir) / layout.METRICS).exists() else []


def steps(run_dir: Path) -> list[dict]:
    return [e for e in events(run_dir) if e["event"] == "step"]


def of_kind(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in events(run_dir) if e["event"] == kind]


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.05):
    """Poll until condition() is truthy; fail with `what` (and the process's output if it died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group / session started by the launcher."""
    found = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def listening_sockets(pid: int) -> list:
    """TCP/UDP sockets in LISTEN state (or bound UDP) held by the process and its children."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == 2 and c.laddr):  # 2 = SOCK_DGRAM
                    out.append((p.pid, c))
        except psutil.Error:
            continue
    return out
