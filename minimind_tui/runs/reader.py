"""Incremental reader of metrics.jsonl (and any growing line file): the dashboard and tests share it."""
from __future__ import annotations

from pathlib import Path

import orjson


class LineTail:
    """Complete lines (bytes, without the newline) appended to a growing file since the last call.

    A partial last line is held back until its newline arrives; a file that shrank (truncated or
    replaced) is read again from the start. With `tail_bytes`, the first read starts that far before
    the end (a long log's beginning is not worth reading) and drops the cut first line."""

    def __init__(self, path, offset: int = 0, tail_bytes: int | None = None):
        self.path = Path(path)
        self.offset = offset
        self._tail_bytes = tail_bytes
        self._partial = b""

    def read_lines(self, max_bytes: int = 8 << 20) -> list[bytes]:
        cut_first = False
        try:
            with open(self.path, "rb") as f:
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
