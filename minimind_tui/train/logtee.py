"""Copy everything this process prints (stdout and stderr, tracebacks included) into train.log."""
from __future__ import annotations

import sys
import threading
from pathlib import Path


class _Tee:
    def __init__(self, stream, log, lock: threading.Lock):
        self._stream = stream
        self._log = log
        self._lock = lock

    def write(self, text: str) -> int:
        with self._lock:
            try:
                self._log.write(text)
                self._log.flush()
            except (OSError, ValueError):
                pass  # a full disk or a closed log must not stop training
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)  # a closed terminal (hang-up) must not stop training either: the log has it

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return self._stream.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)


class LogTee:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._log = None
        self._saved = None

    def start(self) -> LogTee:
        self._log = open(self.path, "a", encoding="utf-8", errors="replace")
        lock = threading.Lock()
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self._log, lock)
        sys.stderr = _Tee(sys.stderr, self._log, lock)
        return self

    def stop(self) -> None:
        if self._saved:
            sys.stdout, sys.stderr = self._saved
            self._saved = None
        if self._log:
            self._log.close()
            self._log = None
