"""A run's training curves, by step: what the Runs tab charts. No Textual here (run_watch.py feeds it from the
polling thread; the chart widgets read immutable snapshots of it).

metrics.jsonl is in the order things happened, which is not the order of steps: a run resumed from an earlier
checkpoint replays the steps after it, and those replace the ones written before (the weights that made them
were thrown away). So the series is kept sorted by step, a replayed step truncates what came after it, and each
resume is remembered as a marker for the chart.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

NAN = float("nan")


@dataclass(frozen=True)
class Metric:
    key: str        # the step event's field
    title: str      # what the chart is called
    fmt: str        # how its current value is printed
    smooth: bool = True  # noisy: drawn smoothed over its raw values (lr and memory are not noisy)


# What the Runs tab charts, in its order. "mem" is the GPU's peak memory, or the trainer's RSS on CPU runs.
METRICS = (
    Metric("loss", "loss", ".3f"),
    Metric("lr", "lr", ".2e", smooth=False),
    Metric("grad_norm", "grad norm", ".3g"),
    Metric("tokens_per_s", "tok/s", ",.0f"),
    Metric("mem", "memory GB", ".2f", smooth=False),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
# Step-event fields kept as columns (mem_peak_gb is null on CPU: rss_gb stands in for it).
FIELDS = ("loss", "lr", "grad_norm", "tokens_per_s", "mem_peak_gb", "rss_gb")
# Header throughput and ETA: averaged over this much training time, so one slow step (a save, an eval) does
# not make them jump.
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Curves:
    """An immutable snapshot of a RunSeries (the chart widgets read it on the UI thread)."""
    steps: array
    columns: dict[str, array]
    seconds: array      # training time each step event covers (its logging window)
    tokens: array       # real tokens trained in that window
    resumes: tuple[int, ...]
    version: int
    _tokens_seen: list[float] | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.steps)

    def values(self, key: str) -> array:
        """The column charted as `key` (a METRICS key)."""
        if key == "mem":
            return self.columns["mem_peak_gb"] if self._has_gpu_memory() else self.columns["rss_gb"]
        return self.columns[key]

    def _has_gpu_memory(self) -> bool:
        return not all(map(math.isnan, self.columns["mem_peak_gb"]))

    def mem_label(self) -> str:
        return "GPU peak GB" if self._has_gpu_memory() else "host RSS GB"

    def tokens_seen(self) -> list[float]:
        """Cumulative real tokens at each step: the x axis when runs with different batches are compared."""
        return list(accumulate(self.tokens))

    def x(self, by_tokens: bool) -> Sequence[float]:
        """The x axis: steps, or tokens seen (summed once per snapshot: every chart of the run shares them)."""
        if not by_tokens:
            return self.steps
        if self._tokens_seen is None:
            object.__setattr__(self, "_tokens_seen", self.tokens_seen())
        return self._tokens_seen

    def x_at_step(self, step: int, by_tokens: bool) -> float:
        """Where `step` falls on the x axis (a resume marker)."""
        if not by_tokens:
            return float(step)
        i = bisect_right(self.steps, step)
        return sum(self.tokens[:i])

    def rates(self, window_s: float = RATE_WINDOW_S) -> tuple[float, float] | None:
        """(tokens per second, seconds per step) over the last `window_s` seconds of training by the current
        process (a resume starts a new window: its first steps include start-up). None before any step."""
        first = bisect_right(self.steps, self.resumes[-1]) if self.resumes else 0
        seconds = tokens = 0.0
        i = len(self.steps)
        while i > first and seconds < window_s:
            i -= 1
            if not math.isnan(self.seconds[i]):
                seconds += self.seconds[i]
                tokens += self.tokens[i]
        if i == len(self.steps) or seconds <= 0:
            return None
        before = self.steps[i - 1] if i > first else (self.resumes[-1] if self.resumes else 0)
        return tokens / seconds, seconds / max(self.steps[-1] - before, 1)


def _values(e: dict) -> list[float]:
    """A step event's FIELDS as floats, NaN for whatever is missing or not a number."""
    out = []
    for v in map(e.get, FIELDS):
        out.append(float(v) if v.__class__ in (float, int) else NAN)
    return out


class RunSeries:
    """Step events folded into columns sorted by step; thread-confined like RunState (the poller owns it)."""

    def __init__(self):
        self.steps = array("q")
        self.columns = {f: array("d") for f in FIELDS}
        self.seconds = array("d")
        self.tokens = array("d")
        self.resumes: list[int] = []
        self.version = 0
        self._window_from = 0  # the step the trainer's current logging window started after
        self._snapshot: Curves | None = None

    def add(self, events: list[dict]) -> None:
        # The hot path of replaying a long run (100k step events): the arrays take the numbers as they are
        # (None is NaN); a field of another type (a hand-edited file) undoes the row and takes _values.
        steps, window_from, last = self.steps, self._window_from, self.steps[-1] if self.steps else -1
        add_step, add_seconds, add_tokens = steps.append, self.seconds.append, self.tokens.append
        columns = list(self.columns.values())
        a0, a1, a2, a3, a4, a5 = (c.append for c in columns)
        changed = False
        for e in events:
            kind = e.get("event")
            if kind == "step":
                step = e.get("step")
                if step.__class__ is not int:
                    continue
                if step <= last:
                    # A replayed step without a resume marker before it (a rewritten file): still by step.
                    self._truncate(step - 1)
                    window_from = steps[-1] if steps else 0
                try:
                    v0, v1, v2, v3, v4, v5 = map(e.get, FIELDS)
                    a0(NAN if v0 is None else v0)
                    a1(NAN if v1 is None else v1)
                    a2(NAN if v2 is None else v2)
                    a3(NAN if v3 is None else v3)
                    a4(NAN if v4 is None else v4)
                    a5(NAN if v5 is None else v5)
                except TypeError:
                    for c in columns:
                        del c[len(steps):]
                    for c, v in zip(columns, _values(e), strict=True):
                        c.append(v)
                span = step - window_from
                step_s = e.get("step_s")
                rate = columns[3][-1]  # tokens_per_s
                secs = step_s * span if step_s.__class__ in (float, int) and span > 0 else NAN
                add_step(step)
                add_seconds(secs)
                add_tokens(rate * secs if rate == rate and secs == secs else 0.0)
                window_from = last = step
                changed = True
            elif kind == "start" and e.get("resumed_from").__class__ is int:
                window_from = e["resumed_from"]
                self._resumed(window_from)
                last = steps[-1] if steps else -1
                changed = True
        self._window_from = window_from
        if changed:
            self.version += 1

    def _resumed(self, step: int) -> None:
        # The steps after the checkpoint are about to be replayed: the old ones (and their markers) go.
        self._truncate(step)
        self.resumes = [r for r in self.resumes if r < step] + [step]

    def _truncate(self, step: int) -> None:
        """Drop every point after `step`."""
        keep = bisect_right(self.steps, step)
        if keep == len(self.steps):
            return
        for a in (self.steps, self.seconds, self.tokens, *self.columns.values()):
            del a[keep:]

    def snapshot(self) -> Curves:
        """A copy the UI thread may keep; the same object while nothing changed (so redraws can be skipped)."""
        if self._snapshot is None or self._snapshot.version != self.version:
            self._snapshot = Curves(array("q", self.steps), {f: array("d", c) for f, c in self.columns.items()},
                                    array("d", self.seconds), array("d", self.tokens), tuple(self.resumes),
                                    self.version)
        return self._snapshot


def loss_stats(curves: Curves) -> tuple[float | None, float | None]:
    """(final, lowest) training loss of a run, None where it has none."""
    finite = [v for v in curves.columns["loss"] if v == v]
    return (finite[-1], min(finite)) if finite else (None, None)
