"""SIGINT/SIGTERM become a request to stop after the current step.

The handler only sets a flag, so a second signal while a checkpoint is being saved cannot interrupt or
re-enter the save; the launcher escalates to SIGKILL if a stop takes too long.
"""
from __future__ import annotations

import signal
import sys
import threading


class StopRequest:
    def __init__(self):
        self._event = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, _frame) -> None:
        first = not self._event.is_set()
        self._event.set()
        if first:
            self.signal_name = signal.Signals(signum).name
            print(f"\n{self.signal_name}: stopping after this step and saving a checkpoint "
                  f"(further signals are ignored until then)", file=sys.stderr, flush=True)

    def request(self, reason: str = "requested") -> None:
        self.signal_name = self.signal_name or reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


class Stopped(Exception):
    """Raised out of long preparation work (tokenising) when a stop was requested."""
