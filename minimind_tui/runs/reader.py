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

    A partial last line is not consumed: the next call reads it again from its start, so a writer that cuts a
    failed, half-written event back off the file (runs/events.EventWriter on a full disk) and writes the next
    one there is read correctly. Only a line longer than a whole read is held in memory instead. A file that
    shrank below the read position (truncated or replaced) is read again from the start. With `tail_bytes`,
    the first read starts that far before the end (a long log's beginning is not worth reading) and drops the
    cut first line. A missing file has no lines yet; one that is not a regular file raises
    NotRegularFile."""

    def __init__(self, path, offset: int = 0, tail_bytes: int | None = None):
        self.path = Path(path)
        self.offset = offset
        self._tail_bytes = tail_bytes
        self._partial = b""        # the start of a line longer than one read
        self._drop_first = False   # the first line read is cut (tail_bytes)

    def read_lines(self, max_bytes: int = 8 << 20) -> list[bytes]:
        try:
            with open_regular(self.path) as f:
                size = f.seek(0, 2)
                if self._tail_bytes is not None:
                    self.offset = max(0, size - self._tail_bytes)
                    self._drop_first = self.offset > 0
                    self._tail_bytes = None
                if size < self.offset:
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                chunk = f.read(max_bytes)
        except FileNotFoundError:
            return []
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        if not end:
            if len(chunk) == max_bytes:  # a line longer than a read: keep its start, read on next time
                self._partial = data
                self.offset += len(chunk)
            return []
        self.offset += end - len(self._partial)
        self._partial = b""
        lines = data[:end - 1].split(b"\n")
        if self._drop_first:
            self._drop_first = False
            lines = lines[1:]
        return lines


class TailReader(LineTail):
    """metrics.jsonl events appended since the last call. Lines that are not JSON objects with an
    "event" are counted in `skipped` and dropped; from a line torn by an earlier full disk, with the next
    event written onto its end, that next event is recovered."""

    def __init__(self, path, offset: int = 0):
        super().__init__(path, offset)
        self.skipped = 0

    def read_new(self, max_bytes: int = 8 << 20) -> list[dict]:
        events = []
        for line in self.read_lines(max_bytes):
            if line.strip():
                events.extend(self._events_in(line))
        return events

    def _events_in(self, line: bytes) -> list[dict]:
        while True:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.skipped += 1
                # Each event starts with this key (events.encode), and inside a JSON string the quotes would
                # be escaped: a later occurrence is where a whole event glued onto a torn one begins.
                at = line.find(_EVENT_START, 1)
                if at < 0:
                    return []
                line = line[at:]
                continue
            if isinstance(obj, dict) and "event" in obj:
                return [obj]
            self.skipped += 1
            return []


_EVENT_START = b'{"event":'


def read_all(path, chunk: int = 8 << 20) -> list[dict]:
    reader = TailReader(path)
    events: list[dict] = []
    while True:  # a chunk of junk lines yields no events but still advances the offset
        before = reader.offset
        events.extend(reader.read_new(chunk))
        if reader.offset == before:
            return events
