"""Helpers of the reliability scenarios only: the tiny model on CPU, caches for module-scoped fixtures, and finding
every process a run left behind. Those shared with other folders (the CLI in a subprocess, a run's events,
bounded waits) are in tests/testkit.py."""
from __future__ import annotations

import os
import signal

import psutil
from testkit import TINY as _TINY

TINY = [*_TINY, "--device", "cpu"]


def cache_env(tmp_path_factory) -> dict:
    """For module-scoped fixtures, which run outside the autouse per-test cache isolation: keep token
    caches in the session's temporary folder, never the user's ~/.cache."""
    return {"MINIMIND_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


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
