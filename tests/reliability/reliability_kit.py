"""Helpers of the reliability scenarios only: the tiny model on CPU, caches for module-scoped fixtures, and finding
every process a run left behind. Those shared with other folders (the CLI in a subprocess, a run's events,
bounded waits) are in tests/testkit.py."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from testkit import TINY as _TINY

TINY = [*_TINY, "--device", "cpu"]


def cache_env(tmp_path_factory) -> dict:
    """For module-scoped fixtures, which run outside the autouse per-test cache isolation: keep token
    caches in the session's temporary folder, never the user's ~/.cache."""
    return {"MINIMIND_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


def train_stopped_run(tmp_path_factory, corpus, name: str, stop_at: int = 6) -> Path:
    """A folder (made once per module) with a real tiny pretraining run, runs/r, stopped after `stop_at` steps
    and checkpointed every 2 (keep_last 3)."""
    import pytest
    from testkit import train_here

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp(name)
    try:
        code = train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                          "--accumulation_steps", "1", "--save_interval", "2", "--run_dir", "runs/r",
                          env={**cache_env(tmp_path_factory), "MINIMIND_TUI_STOP_AT_STEP": str(stop_at)},
                          monkeypatch=mp)
    finally:
        mp.undo()
    assert code == 0
    return root


def one_line_error(capsys, code: int) -> str:
    """The CLI's answer: exit status 2 and exactly one line on stderr, no traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minimind-tui: ") and "Traceback" not in err, err
    return lines[0]


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


def fill(folder: Path) -> Path:
    """Use every free block of the file system holding `folder` (a tmpfs from the `tmpfs` fixture); returns
    the filler file (delete it to free them)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
