"""Random access to the lines of a (possibly multi-GB) JSONL file through a byte-offset index.

The index is a numpy int64 array of line start offsets, built by scanning the file in chunks (never
holding it as Python objects) and cached on disk under a fingerprint of the file's content, so a
second open of the same file costs one small read.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .errors import DataError

CHUNK = 16 << 20
_BOM = b"\xef\xbb\xbf"


def cache_dir() -> Path:
    base = os.environ.get("MINIMIND_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minimind-tui")
    return Path(base)


def file_fingerprint(path: Path) -> str:
    """Size plus sha256 of 16 evenly spread 64 KiB blocks (first and last included).

    Hashing a 1.6 GB file in full would cost seconds at every start; sampled blocks plus the exact size
    catch replaced, appended and truncated files, which is what a cache key must notice."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    block = 1 << 16
    with open(path, "rb") as f:
        if size <= 16 * block:
            h.update(f.read())
        else:
            for k in range(16):
                f.seek((size - block) * k // 15)
                h.update(f.read(block))
    return h.hexdigest()[:20]


def build_index(path: Path, progress=None) -> np.ndarray:
    """Start offsets of every line (a trailing line without newline counts; a final empty one does not)."""
    starts = [np.zeros(1, dtype=np.int64)]
    size = path.stat().st_size
    pos = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            starts.append(nl.astype(np.int64) + pos + 1)
            pos += len(chunk)
            if progress:
                progress(pos, size)
    offsets = np.concatenate(starts)
    if offsets[-1] == size:  # file ends with a newline: no line starts there
        offsets = offsets[:-1]
    return offsets


def check_data_file(path: Path) -> None:
    """DataError naming what is wrong with `path` as a JSONL file (missing, a folder, empty) and what to pick."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.jsonl"))
        hint = f"pick a .jsonl in it: {', '.join(found[:4])}{' …' if len(found) > 4 else ''}" if found else \
            "it holds no .jsonl file"
        raise DataError(f"{path}: a folder, not a file; {hint}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; it needs one JSON object per line")


class JsonlFile:
    """Lines of a JSONL file by 0-based index; `line_number(i)` is the 1-based number people see."""

    def __init__(self, path, progress=None, use_cache: bool = True):
        self.path = Path(path)
        check_data_file(self.path)
        self.size = self.path.stat().st_size
        self.fingerprint = file_fingerprint(self.path)
        self.offsets = self._load_index(progress, use_cache)
        self._fd = os.open(self.path, os.O_RDONLY)

    def _load_index(self, progress, use_cache: bool) -> np.ndarray:
        cached = cache_dir() / "index" / f"{self.fingerprint}.npy"
        if use_cache and cached.is_file():
            try:
                return np.load(cached)
            except (OSError, ValueError, EOFError):
                pass  # unreadable (empty, torn) cache: rebuild below
        offsets = build_index(self.path, progress)
        if use_cache:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                # A cache: an unreadable one is rebuilt (above), so it needs no fsync.
                write_atomic(cached, lambda f: np.save(f, offsets), durable=False)
            except OSError:
                pass  # a read-only cache only costs a rebuild next time
        return offsets

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def n_lines(self) -> int:
        return len(self.offsets)

    def line(self, i: int) -> bytes:
        """Raw bytes of line i without its line ending (LF or CRLF) and without a UTF-8 BOM."""
        start = int(self.offsets[i])
        end = int(self.offsets[i + 1]) if i + 1 < len(self.offsets) else self.size
        data = os.pread(self._fd, end - start, start)
        if data.endswith(b"\n"):
            data = data[:-1]
        if data.endswith(b"\r"):
            data = data[:-1]
        if i == 0 and data.startswith(_BOM):
            data = data[3:]
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # Pickling (DataLoader workers, DDP spawn) reopens the file descriptor.
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = -1
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._fd = os.open(self.path, os.O_RDONLY)
