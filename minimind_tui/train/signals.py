"""SIGINT, SIGTERM and SIGHUP become a request to stop after the current step.

The handler only sets a flag, so a second signal while a checkpoint is being saved cannot interrupt or
re-enter the save; the launcher escalates to SIGKILL if a stop takes too long.

SIGHUP is what a CLI run gets when its terminal closes (an SSH connection dropped without tmux). The run then
saves and ends `stopped`, as on Ctrl-C; its stdout and stderr, which named the dead terminal, are pointed at
/dev/null first, so the prints of the save cannot fail (train.log still gets every line: logtee.py).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequest:
    def __init__(self):
        self._event = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, _frame) -> None:
        if signum == signal.SIGHUP:
            _detach_from_terminal()
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


def _detach_from_terminal() -> None:
    """Point stdout and stderr that are a terminal at /dev/null: after a hang-up, writing to it fails (EIO)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            try:
                if os.isatty(fd):
                    os.dup2(devnull, fd)
            except OSError:
                continue
    finally:
        os.close(devnull)


class Stopped(Exception):
    """Raised out of long preparation work (tokenising) when a stop was requested."""
