"""Follow runs on disk: incremental tails of every run's metrics.jsonl plus the selected run's train.log.

No Textual here (like toolong's file model): the app calls `poll()` from a worker thread and posts the
results as messages, one per poll, so a trainer writing thousands of events a second costs the UI one
repaint per poll interval.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.runs import layout
from minimind_tui.runs.launcher import LAUNCHER_LOG, LAUNCHER_PID
from minimind_tui.runs.reader import LineTail, TailReader
from minimind_tui.runs.summary import RunState, RunSummary

LOG_LINES = 200


class TextTail:
    """New text lines of train.log; the first read shows only the end of a long log."""

    def __init__(self, path: Path, keep_last_bytes: int = 64 << 10):
        self._lines = LineTail(path, tail_bytes=keep_last_bytes)

    def read_new(self, max_bytes: int = 1 << 20) -> list[str]:
        # Progress bars redraw with \r: show the last state of such a line.
        return [ln.decode("utf-8", "replace").rstrip("\r").rsplit("\r", 1)[-1]
                for ln in self._lines.read_lines(max_bytes)]


@dataclass(frozen=True)
class RunView:
    """What the monitor shows for one run: its summary plus log lines that are new since the last view."""
    run_dir: Path
    summary: RunSummary
    new_log_lines: tuple[str, ...] = ()
    reset_log: bool = False  # the run changed: clear the log panel first


class _Followed:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.reader = TailReader(run_dir / layout.METRICS)
        self.state = RunState(run_dir)

    def update(self) -> None:
        while events := self.reader.read_new():
            self.state.add(events)


class RunsIndex:
    """All runs under root/runs, followed incrementally. Thread-confined: only the polling worker uses it."""

    def __init__(self, root: Path, exit_code: Callable[[Path], int | None] = lambda p: None,
                 clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.exit_code = exit_code
        self.clock = clock
        self._runs: dict[Path, _Followed] = {}
        self._log: tuple[Path, TextTail] | None = None

    def summaries(self) -> list[RunSummary]:
        found = _run_dirs(self.root)
        self._runs = {p: self._runs.get(p) or _Followed(p) for p in found}
        now = self.clock()
        out = []
        for p in found:
            f = self._runs[p]
            f.update()
            s = f.state.summary(now, self.exit_code(p))
            out.append(without_series(s))
        return out

    def view(self, run_dir: Path) -> RunView:
        run_dir = Path(run_dir)
        f = self._runs.get(run_dir)
        if f is None:
            f = self._runs[run_dir] = _Followed(run_dir)
        f.update()
        reset = self._log is None or self._log[0] != run_dir
        if reset:
            self._log = (run_dir, TextTail(run_dir / layout.LOG))
        lines = self._log[1].read_new()
        if reset and not lines:
            lines = TextTail(run_dir / LAUNCHER_LOG).read_new()  # a trainer that died before logging
        return RunView(run_dir, f.state.summary(self.clock(), self.exit_code(run_dir)),
                       tuple(lines[-LOG_LINES:]), reset)


def _run_dirs(root: Path) -> list[Path]:
    """layout.list_runs plus runs just launched (only launcher files yet), newest first."""
    found = layout.list_runs(root)
    runs = layout.runs_dir(root)
    if runs.is_dir():
        known = set(found)
        fresh = [p for p in runs.iterdir() if p not in known and (p / LAUNCHER_PID).is_file()]
        found = sorted([*found, *fresh], key=lambda p: p.stat().st_mtime, reverse=True)
    return found


def without_series(s: RunSummary) -> RunSummary:
    from dataclasses import replace
    return replace(s, loss_points=(), lr_points=())


def newest_live(summaries: list[RunSummary]) -> RunSummary | None:
    return next((s for s in summaries if s.is_live), None)
