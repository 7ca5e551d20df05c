"""Stall watchdog: a side thread that notices when the step counter stops moving.

The main thread cannot see its own hang (a deadlocked collective, a dead NFS mount, a GPU stuck in a
kernel), so a daemon thread compares the time since the last finished step with the usual step time
(the median of recent steps) and writes one `stall` event per stalled step when it exceeds
max(factor x median, floor). Saves are excluded: they are announced by `ckpt` and can be slow.
The heartbeat keeps beating meanwhile, which is why the dashboard needs this event to tell "alive but
stuck" from "alive and working".

On a GPU it also watches utilisation (when NVML can read it): the device held at 0% for the same floor
while a step is under way is a stall too (reason "GPU idle"), e.g. a rank waiting on a dead peer.

Test hooks: MINIMIND_TUI_STALL_FACTOR (default 10) and MINIMIND_TUI_STALL_MIN_S (default 60).
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

FACTOR_ENV = "MINIMIND_TUI_STALL_FACTOR"
MIN_S_ENV = "MINIMIND_TUI_STALL_MIN_S"
DEFAULT_FACTOR = 10.0
DEFAULT_MIN_S = 60.0


class StallWatchdog:
    def __init__(self, emit: Callable[..., None], factor: float | None = None, min_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, poll_s: float | None = None,
                 gpu_util: Callable[[], int | None] | None = None):
        self.emit = emit
        self.factor = factor if factor is not None else float(os.environ.get(FACTOR_ENV) or DEFAULT_FACTOR)
        self.min_s = min_s if min_s is not None else float(os.environ.get(MIN_S_ENV) or DEFAULT_MIN_S)
        self.clock = clock
        self.poll_s = poll_s if poll_s is not None else max(0.1, min(5.0, self.min_s / 4))
        self._durations: deque[float] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._step: int | None = None
        self._last: float | None = None
        self._paused = False
        self._reported: int | None = None
        self.gpu_util = gpu_util
        self._idle_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-watchdog", daemon=True)

    def start(self) -> StallWatchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def stepped(self, step: int) -> None:
        """Called by the loop after each optimizer step."""
        now = self.clock()
        with self._lock:
            if self._last is not None and not self._paused:
                self._durations.append(now - self._last)
            self._step, self._last, self._paused = step, now, False

    def pause(self) -> None:
        """A save is running: not a stall (resumed by the next stepped())."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._last = self.clock()  # the save's time does not count as step time

    def threshold(self) -> float:
        with self._lock:
            usual = statistics.median(self._durations) if self._durations else 0.0
        return max(self.min_s, self.factor * usual)

    def check(self) -> bool:
        """Emit `stall` if the current step is overdue, or the GPU idle, and not yet reported. True when it emitted."""
        now = self.clock()
        idle_for = self._gpu_idle_for(now)
        with self._lock:
            if self._last is None or self._paused or self._reported == self._step:
                return False
            step, since = self._step, now - self._last
        limit = self.threshold()
        if since >= limit:
            reason = f"no step for {since:.0f} s"
        elif idle_for is not None and idle_for >= self.min_s and since >= self.min_s:
            reason = f"GPU idle (0% utilisation) for {idle_for:.0f} s"
        else:
            return False
        self._reported = step
        self.emit("stall", step=step, seconds_since_step=round(since, 1), threshold_s=round(limit, 1), reason=reason)
        return True

    def _gpu_idle_for(self, now: float) -> float | None:
        """Seconds the GPU has read 0% without a break (None: busy, unknown, or no GPU)."""
        if self.gpu_util is None:
            return None
        try:
            util = self.gpu_util()
        except Exception:
            util = None
        if util != 0:
            self._idle_since = None
            return None
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:
                pass  # the watchdog must never take the run down
