"""Follow runs on disk: incremental tails of every run's metrics.jsonl plus the selected run's train.log, and the
step-ordered curves (curves.py) of the runs being charted: the selected one and those compared.

No Textual here (like toolong's file model): the app calls `poll()` from a worker thread and posts the
results as messages, one per poll, so a trainer writing thousands of events a second costs the UI one
repaint per poll interval. Each run folder is read in isolation (summary.read_isolated): a folder whose files
make no sense is an "unreadable" row, one deleted meanwhile drops out, and every other run stays live.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.runs import layout
from minimind_tui.runs.events import RunStatus
from minimind_tui.runs.launcher import LAUNCHER_LOG, LAUNCHER_PID
from minimind_tui.runs.reader import LineTail, TailReader
from minimind_tui.runs.summary import RunState, RunSummary, UnreadableRun, check_run_files, read_config, read_isolated

from .curves import Curves, RunSeries

LOG_LINES = 200
# Runs whose curves are kept in memory (a few MB per 100k steps each): the selected one, those compared, and
# the last few looked at, so moving the cursor back and forth does not re-read their files.
CHARTED_RUNS = 8


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
    curves: Curves | None = None
    eval_points: tuple[tuple[int, float], ...] = ()  # (step, validation loss), by step: add_eval_points()


@dataclass(frozen=True)
class Compared:
    """One run of a comparison: its curves and its config.json (for the table of differing settings)."""
    run_id: str
    curves: Curves
    config: dict
    eval_points: tuple[tuple[int, float], ...] = ()  # (step, validation loss), by step


class _Followed:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.reader = TailReader(run_dir / layout.METRICS)
        self.state = RunState(run_dir)
        self.series: RunSeries | None = None  # only while charted
        self.config: dict = {}  # config.json, once a comparison needs it
        self.evals: dict[int, float] = {}  # step -> validation loss

    def update(self) -> None:
        while events := self.reader.read_new():
            self.state.add(events)
            if self.series is not None:
                self.series.add(events)
            add_eval_points(self.evals, events)

    def chart(self) -> RunSeries:
        """Start keeping this run's curves: the events already read are read again, up to where the summary's
        reader stands; from then on both are fed the same events."""
        if self.series is None:
            series = RunSeries()
            catch_up = TailReader(self.reader.path)
            while catch_up.offset < self.reader.offset:
                before = catch_up.offset
                series.add(catch_up.read_new(self.reader.offset - catch_up.offset))
                if catch_up.offset == before:  # the file shrank meanwhile: the reader starts over anyway
                    break
            self.series = series
        return self.series


def add_eval_points(evals: dict[int, float], events: list[dict]) -> None:
    """Fold `eval` events (events.py) into step -> validation loss. Keyed by step, and a resume from an earlier
    checkpoint drops the evaluations after it, as the curves drop the steps after it (those weights are gone):
    the replayed evaluations take their place."""
    for e in events:
        kind = e.get("event")
        if kind == "start" and e.get("resumed_from").__class__ is int:
            for step in [s for s in evals if s > e["resumed_from"]]:
                del evals[step]
        elif kind == "eval" and isinstance(e.get("step"), int) and isinstance(e.get("loss"), (int, float)):
            evals[e["step"]] = float(e["loss"])


class RunsIndex:
    """All runs under root/runs, followed incrementally. Thread-confined: only the polling worker uses it."""

    def __init__(self, root: Path, exit_code: Callable[[Path], int | None] = lambda p: None,
                 clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.exit_code = exit_code
        self.clock = clock
        self._runs: dict[Path, _Followed] = {}
        self._log: tuple[Path, TextTail] | None = None
        self._charted: OrderedDict[Path, _Followed] = OrderedDict()

    def summaries(self) -> list[RunSummary]:
        found = _run_dirs(self.root)
        self._runs = {p: self._runs.get(p) or _Followed(p) for p in found}
        now = self.clock()
        return [s for p in found if (s := self._summary(p, now)) is not None]

    def _followed(self, run_dir: Path) -> _Followed:
        f = self._runs.get(run_dir)
        if f is None:
            f = self._runs[run_dir] = _Followed(run_dir)
        return f

    def _summary(self, run_dir: Path, now: float) -> RunSummary | None:
        """The run's summary, read in isolation: unreadable with the reason, or None when the folder is gone."""
        f = self._followed(run_dir)

        def read() -> RunSummary:
            f.update()
            return f.state.summary(now, self.exit_code(run_dir))

        summary = read_isolated(run_dir, read)
        if summary is None:
            self._runs.pop(run_dir, None)
            self._charted.pop(run_dir, None)
        return summary

    def _curves(self, f: _Followed) -> Curves:
        """f's curves, brought up to date; runs charted longest ago stop being charted."""
        self._charted[f.run_dir] = f
        self._charted.move_to_end(f.run_dir)
        while len(self._charted) > CHARTED_RUNS:
            self._charted.popitem(last=False)[1].series = None
        f.chart()
        f.update()
        assert f.series is not None
        return f.series.snapshot()

    def view(self, run_dir: Path) -> RunView | None:
        """The selected run's summary, curves and new log lines; None when its folder is gone. An unreadable
        run has its reason and nothing else."""
        run_dir = Path(run_dir)
        summary = self._summary(run_dir, self.clock())
        if summary is None:
            return None
        reset = self._log is None or self._log[0] != run_dir
        if reset:
            self._log = (run_dir, TextTail(run_dir / layout.LOG))
        if summary.status is RunStatus.UNREADABLE:
            return RunView(run_dir, summary, (), reset)
        f = self._followed(run_dir)
        try:
            curves = self._curves(f)
        except OSError:  # replaced by a FIFO, or deleted, since the summary was read: no curves this round
            curves = None
        return RunView(run_dir, summary, tuple(self._log_lines(run_dir, reset)[-LOG_LINES:]), reset, curves,
                       tuple(sorted(f.evals.items())))

    def _log_lines(self, run_dir: Path, reset: bool) -> list[str]:
        assert self._log is not None
        try:
            lines = self._log[1].read_new()
            if reset and not lines:
                lines = TextTail(run_dir / LAUNCHER_LOG).read_new()  # a trainer that died before logging
        except OSError as e:  # replaced by a FIFO or made unreadable since the summary's check
            return [f"(cannot read the log: {e})"]
        return lines

    def compare(self, run_dirs: Sequence[Path]) -> tuple[Compared, ...]:
        """The curves and config.json of each run compared, in the order given; one that cannot be read (deleted,
        poisoned, a FIFO where a file belongs) is left out and the others are still compared."""
        out = []
        for run_dir in map(Path, run_dirs):
            f = self._followed(run_dir)
            try:
                check_run_files(run_dir)
                if not f.config:  # written by the trainer a moment after the run folder appears
                    f.config = read_config(run_dir)
                out.append(Compared(run_dir.name, self._curves(f), f.config, tuple(sorted(f.evals.items()))))
            except (OSError, UnreadableRun):
                continue
        return tuple(out)


def _run_dirs(root: Path) -> list[Path]:
    """layout.list_runs plus runs just launched (only launcher files yet), newest first."""
    found = layout.list_runs(root)
    runs = layout.runs_dir(root)
    if runs.is_dir():
        known = set(found)
        fresh = [p for p in runs.iterdir() if p not in known and (p / LAUNCHER_PID).is_file()]
        found = layout.newest_first([*found, *fresh])
    return found




def newest_live(summaries: list[RunSummary]) -> RunSummary | None:
    return next((s for s in summaries if s.is_live), None)
