"""The heartbeat file, touched from a side thread so a long step or a slow save still shows a live run."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from minimind_tui.runs import layout


class Heartbeat:
    def __init__(self, run_dir: Path, every_s: float = layout.HEARTBEAT_EVERY_S):
        self.path = Path(run_dir) / layout.HEARTBEAT
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        try:
            with open(self.path, "a"):
                pass
            os.utime(self.path)
        except OSError:
            pass  # a full or read-only disk must not kill training; the dashboard will see a stale beat

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
