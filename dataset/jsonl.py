"""Random access to the lines of a (possibly multi-GB) JSONL file through a byte-offset index.

The index is a numpy int64 array of line start offsets, built by scanning the file in chunks (never
holding it as Python objects) and cached on disk under the file's fingerprint, so a second open of the same
file costs one small read.

The fingerprint is the SHA-256 of every byte, so any edit gives a new one (a sample of blocks missed a
same-size edit between them, and training then used stale tokens and a stale line index). Hashing a big
file at every start would cost seconds, so the digest is remembered with the file's identity (device, inode,
size, mtime and ctime in ns): while those are unchanged the remembered digest is used, and when any changes,
or on demand (`rehash=True`, `data validate --rehash`), the file is hashed again. A cached index is checked
against the file before it is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .errors import DataError

CHUNK = 16 << 20
_BOM = b"\xef\xbb\xbf"
# A digest is remembered only for a file last changed this long before hashing began: within one tick of
# the file system's clock (coarse on Linux, 2 s on FAT) a later edit could leave mtime and ctime unchanged.
RACY_NS = 2_000_000_000
_SPOT_CHECKS = 64  # line starts of a cached index checked against the file's bytes


def cache_dir() -> Path:
    base = os.environ.get("MINIMIND_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minimind-tui")
    return Path(base)


def _identity(st: os.stat_result) -> list[int]:
    """What changes whenever a file's bytes do: a write sets mtime and ctime, and ctime cannot be set back
    (`touch -d` restoring mtime still moves it); a replacement by rename is another inode."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _memo_path(path: Path) -> Path:
    name = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:24]
    return cache_dir() / "fingerprints" / f"{name}.json"


def _recall(path: Path, st: os.stat_result) -> str | None:
    """The digest remembered for `path` if the file is still the one that was hashed, else None."""
    try:
        memo = json.loads(_memo_path(path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(memo, dict) or memo.get("identity") != _identity(st):
        return None
    digest = memo.get("fingerprint")
    return digest if isinstance(digest, str) else None


def _remember(path: Path, st: os.stat_result, digest: str, hashed_from_ns: int) -> None:
    if max(st.st_mtime_ns, st.st_ctime_ns) > hashed_from_ns - RACY_NS:
        return  # changed moments ago: a second edit in the same clock tick would go unseen, so hash again next time
    memo = _memo_path(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(memo, json.dumps({"identity": _identity(st), "fingerprint": digest}), durable=False)
    except OSError:
        pass  # a read-only cache only costs a hash next time


def _read_pass(fd: int, size: int, progress=None, digest: bool = True, index: bool = True
               ) -> tuple[str | None, np.ndarray | None]:
    """One read of the file: its fingerprint (SHA-256 of every byte) and/or its line index. The hash runs
    in a thread beside the newline search (both release the GIL), so together they cost about one of them."""
    h = hashlib.sha256() if digest else None
    starts = [np.zeros(1, dtype=np.int64)]
    pos, pending = 0, None
    with ThreadPoolExecutor(1) as pool:
        while chunk := os.pread(fd, CHUNK, pos):
            if h is not None:
                if pending is not None:
                    pending.result()
                pending = pool.submit(h.update, chunk)
            if index:
                nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
                starts.append(nl.astype(np.int64) + pos + 1)
            pos += len(chunk)
            if progress:
                progress(min(pos, size), size)
        if pending is not None:
            pending.result()
    offsets = None
    if index:
        offsets = np.concatenate(starts)
        if offsets[-1] == pos:  # file ends with a newline: no line starts there
            offsets = offsets[:-1]
    return (h.hexdigest()[:20] if h is not None else None), offsets


def file_fingerprint(path: Path, rehash: bool = False) -> str:
    """SHA-256 of every byte of `path` (20 hex digits), remembered while the file's identity is unchanged."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        known = None if rehash else _recall(path, st)
        if known:
            return known
        started = time.time_ns()
        digest, _ = _read_pass(fd, st.st_size, index=False)
        assert digest is not None
        if _identity(os.fstat(fd)) != _identity(st):
            raise DataError(f"{path}: the file changed while it was being read; wait until whatever writes it "
                            "has finished")
        _remember(path, st, digest, started)
        return digest
    finally:
        os.close(fd)


def build_index(path: Path, progress=None) -> np.ndarray:
    """Start offsets of every line (a trailing line without newline counts; a final empty one does not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return build_index_of(fd, os.fstat(fd).st_size, progress)
    finally:
        os.close(fd)


def build_index_of(fd: int, size: int, progress=None) -> np.ndarray:
    offsets = _read_pass(fd, size, progress, digest=False)[1]
    assert offsets is not None
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
    """Lines of a JSONL file by 0-based index; `line_number(i)` is the 1-based number people see.

    Every read goes through one descriptor opened before the file is fingerprinted, so the lines are those of
    the file that was hashed even if another is renamed over the path; `check_unchanged()` raises if the file
    was written to since (the token cache calls it before keeping what it built)."""

    def __init__(self, path, progress=None, use_cache: bool = True, rehash: bool = False):
        self.path = Path(path)
        check_data_file(self.path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._stat = os.fstat(self._fd)
            self.size = self._stat.st_size
            self.fingerprint, self.offsets = self._identify(progress, use_cache, rehash)
            self.check_unchanged()
        except BaseException:
            self.close()
            raise

    def _identify(self, progress, use_cache: bool, rehash: bool) -> tuple[str, np.ndarray]:
        """(fingerprint, line index): the remembered digest and the cached index when both still hold, else
        from one read of the file."""
        known = _recall(self.path, self._stat) if use_cache and not rehash else None
        if known:
            offsets = self._cached_index(known)
            if offsets is None:
                offsets = build_index_of(self._fd, self.size, progress)
                self._save_index(known, offsets)
            return known, offsets
        started = time.time_ns()
        digest, offsets = _read_pass(self._fd, self.size, progress)
        assert digest is not None and offsets is not None
        if use_cache:
            self.check_unchanged()  # never remember a digest of bytes that were changing under the read
            _remember(self.path, self._stat, digest, started)
            self._save_index(digest, offsets)
        return digest, offsets

    def _cached_index(self, digest: str) -> np.ndarray | None:
        """The cached index of this content if it is sound for this file: offsets rising from 0 within the
        file, and every sampled line start preceded by a newline. A torn or damaged cache file reads as None."""
        try:
            offsets = np.load(cache_dir() / "index" / f"{digest}.npy")
        except (OSError, ValueError, EOFError):
            return None
        if offsets.ndim != 1 or offsets.dtype != np.int64 or not len(offsets) or offsets[0] != 0 \
                or offsets[-1] >= self.size or bool((offsets[1:] <= offsets[:-1]).any()):
            return None
        starts = offsets[1:]
        picks = starts[np.linspace(0, len(starts) - 1, min(len(starts), _SPOT_CHECKS)).astype(np.int64)]
        if any(os.pread(self._fd, 1, int(o) - 1) != b"\n" for o in picks):
            return None
        return offsets

    def _save_index(self, digest: str, offsets: np.ndarray) -> None:
        cached = cache_dir() / "index" / f"{digest}.npy"
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            # A cache: an unreadable one is rebuilt (_cached_index), so it needs no fsync.
            write_atomic(cached, lambda f: np.save(f, offsets), durable=False)
        except OSError:
            pass  # a read-only cache only costs a rebuild next time

    def check_unchanged(self) -> None:
        """DataError if the file was written to since it was fingerprinted (a same-size edit included)."""
        if self._fd >= 0 and _identity(os.fstat(self._fd)) != _identity(self._stat):
            raise DataError(f"{self.path}: the file changed while it was being read; wait until whatever "
                            "writes it has finished, then start again")

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
        self.check_unchanged()  # reopened by name: it must still be the file that was indexed
