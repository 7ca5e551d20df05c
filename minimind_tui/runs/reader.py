"""Incremental reader of metrics.jsonl (and any growing line file): the dashboard and tests share it."""
from __future__ import annotations

from pathlib import Path

import orjson


class LineTail:
    """Complete lines (bytes, without the newline) appended to a growing file since the last call.

    A partial last line is not consumed: the next call reads it again from its start, so a writer that cuts a
    failed, half-written event back off the file (runs/events.EventWriter on a full disk) and writes the next
    one there is read correctly. Only a line longer than a whole read is held in memory instead. A file that
    shrank below the read position (truncated or replaced) is read again from the start. With `tail_bytes`,
    the first read starts that far before the end (a long log's beginning is not worth reading) and drops the
    cut first line."""

    def __init__(self, path, offset: int = 0, tail_bytes: int | None = None):
        self.path = Path(path)
        self.offset = offset
        self._tail_bytes = tail_bytes
        self._partial = b""        # the start of a line longer than one read
        self._drop_first = False   # the first line read is cut (tail_bytes)

    def read_lines(self, max_bytes: int = 8 << 20) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
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
