"""trainer.lock: one trainer per run directory.

The file holds "PID START_TIME HOST" (runs/pids.py). A lock whose process is gone (or whose pid now belongs to
a different, later process) is stale and is cleared.
"""
from __future__ import annotations

import os
from pathlib import Path

from dataset.atomic import create_exclusive
from minimind_tui.errors import UserError
from minimind_tui.runs import layout, pids


class RunLocked(UserError):
    pass


def _holder_alive(text: str) -> int | None:
    """The live pid holding a lock with this content, or None when the lock is stale."""
    record = pids.parse(text)
    if record is None:
        return None
    if not record.here:
        return record.pid  # another machine's process: we cannot tell, so respect it
    return record.pid if record.running() else None


class TrainerLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / layout.LOCK
        self.held = False

    def acquire(self) -> TrainerLock:
        me = pids.record_line()
        for _ in range(5):
            if self._create(me):
                self.held = True
                return self
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                continue
            pid = _holder_alive(text)
            if pid is not None and pid != os.getpid():
                raise RunLocked(f"{self.path.parent}: another trainer (pid {pid}) is writing to this run; "
                                f"stop it first, or start a new run") from None
            if self._clear_stale(text):
                print(f"clearing a stale lock left by a process that is gone: {text.split()[:1]}", flush=True)
        raise RunLocked(f"{self.path}: could not take the run lock (another trainer is starting?)")

    def _create(self, content: str) -> bool:
        """Create the lock with its content in one step, so no other trainer ever reads a half-written lock
        and takes it for a stale one."""
        return create_exclusive(self.path, content)

    def _clear_stale(self, stale: str) -> bool:
        """Remove the lock only if it is still the stale one we read: two trainers clearing the same stale
        lock at once must not remove the lock the faster one has just taken."""
        grave = self.path.with_name(f".{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return False
        try:
            if grave.read_text() == stale:
                return True
            try:
                os.link(grave, self.path)  # a fresh lock taken meanwhile: put it back
            except FileExistsError:
                pass
            return False
        finally:
            grave.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            try:
                if self.path.read_text().split()[:1] == [str(os.getpid())]:
                    self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False
