"""A disk that refuses a write: telling it apart from other errors, and saying so in one line.

A full file system, a quota, a read-only mount or a folder we may not write to are the user's to fix (free
space, remount, choose another folder), so where the trainer meets one while it starts (the run folder, the
token cache) it names the path, what is free there and what it needed, instead of a traceback. Torch-free
and project-free, like atomic.py beside it, so every layer can use it.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

# What the disk (not the program) refused: no space, over quota, mounted read-only, not ours to write.
REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def refused(error: BaseException) -> bool:
    """True when `error` is an OSError that says the disk refused a write (see REFUSALS)."""
    return isinstance(error, OSError) and error.errno in REFUSALS


def human_size(n: float) -> str:
    """Bytes as people read them: 512 B, 3.4 KB, 1.2 GB (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def free_bytes(path: Path) -> int | None:
    """Free space for an ordinary user on the file system holding `path` (its nearest existing folder)."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def refusal_message(path: Path, error: OSError, needed: str, fix: str) -> str:
    """One line: the path, what the disk said, the free space there and what the work needs, and what to do.
    `needed` describes the space the work needs ("a checkpoint of this model needs about 3.2 MB")."""
    reason = error.strerror or os.strerror(error.errno or 0)
    free = free_bytes(path)
    where = f"{reason}, {human_size(free)} free" if free is not None and error.errno != errno.EROFS else reason
    return f"{path}: {where}; {needed}; {fix}"
