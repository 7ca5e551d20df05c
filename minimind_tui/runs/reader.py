"""Incremental reader of metrics.jsonl (and any growing line file): the dashboard and tests share it."""
from __future__ import annotations

from pathlib import Path

import orjson


class TailReader:
    """Reads complete lines appended since the last call. A partial last line is held back until its
    newline arrives; lines that are not JSON objects are counted in `skipped` and dropped."""

    def __init__(self, path, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self.skipped = 0
        self._partial = b""

    def read_new(self, max_bytes: int = 8 << 20) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                if size < self.offset:  # truncated or replaced: start over
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                chunk = f.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when data ended with a newline
        events = []
        for line in lines:
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
