"""Incremental reader of metrics.jsonl (and any growing line file): the dashboard and tests share it.

Run folders are read by a dashboard that must never hang on one of them, so nothing here opens a file that is
not a regular file: opening a FIFO for reading waits for a writer forever, and a device can be endless.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import orjson


class NotRegularFile(OSError):
    """A path that exists but is a FIFO, socket, device or folder where a file was expected."""


def open_regular(path) -> BinaryIO:
    """`open(path, "rb")` for regular files only (FileNotFoundError when missing, NotRegularFile otherwise).
    The open itself does not block: O_NONBLOCK makes a FIFO open return at once, and fstat (of what was
    opened, not of the name, which could be swapped in between) then refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{Path(path).name} is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit: int = 1 << 20) -> bytes | None:
    """The first `limit` bytes of a small regular file, or None when it does not exist."""
    try:
        with open_regular(path) as f:
            return f.read(limit)
    except FileNotFoundError:
        return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a file"


class LineTail:
    """Complete lines (bytes, without the newline) appended to a growing file since the last call.

    A partial last line is held back until its newline arrives; a file that shrank (truncated or
    replaced) is read again from the start. With `tail_bytes`, the first read starts that far before
    the end (a long log's beginning is not worth reading) and drops the cut first line. A missing file
    has no lines yet; one that is not a regular file raises NotRegularFile."""

    def __init__(self, path, offset: int = 0, tail_bytes: int | None = None):
        self.path = Path(path)
        self.offset = offset
        self._tail_bytes = tail_bytes
        self._partial = b""

    def read_lines(self, max_bytes: int = 8 << 20) -> list[bytes]:
        cut_first = False
        try:
            with open_regular(self.path) as f:
                size = f.seek(0, 2)
                if self._tail_bytes is not None:
                    self.offset = max(0, size - self._tail_bytes)
                    cut_first = self.offset > 0
                    self._tail_bytes = None
                if size < self.offset:
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                chunk = f.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # b"" when the data ended with a newline
        return lines[1:] if cut_first and lines else lines


class TailReader(LineTail):
    """metrics.jsonl events appended since the last call. Lines that are not JSON objects with an
    "event" are counted in `skipped` and dropped."""

    def __init__(self, path, offset: int = 0):
        super().__init__(path, offset)
        self.skipped = 0

    def read_new(self, max_bytes: int = 8 << 20) -> list[dict]:
        events = []
        for line in self.read_lines(max_bytes):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.skipped += 1
                continue
            if isinstance(obj, dict) and "event" in obj:
                events.append(obj)
            else:
                self.skipped += 1
        return events


def read_all(path, chunk: int = 8 << 20) -> list[dict]:
    reader = TailReader(path)
    events: list[dict] = []
    while True:  # a chunk of junk lines yields no events but still advances the offset
        before = reader.offset
        events.extend(reader.read_new(chunk))
        if reader.offset == before:
            return events
