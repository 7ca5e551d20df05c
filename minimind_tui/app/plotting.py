"""What a chart draws, worked out without Textual: downsampling to the chart's width, EMA smoothing, a y range the
opening drop does not flatten, log scale, and tick positions with short labels. The chart widgets
(widgets/charts.py) only hand the result to the plotting library, so everything here is unit-tested as is.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace

# EMA weights the smoothing key steps through (TensorBoard's default is 0.6; 0 draws the raw points only).
SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
DEFAULT_SMOOTHING = 0.6


@dataclass(frozen=True)
class Buckets:
    """A series reduced to one bucket per pixel column: each bucket's x (the mean x of its points) and the
    lowest, highest and mean y of its points."""
    x: list[float]
    lo: list[float]
    hi: list[float]
    mean: list[float]


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> Buckets:
    """At most `n` buckets of equal x width over the data (xs sorted ascending; NaN ys skipped). Fewer points
    than buckets come back as they are. Min and max keep the spikes a mean would hide; the mean is the line.
    Each bucket is a slice reduced by builtins, so 100k points cost a few milliseconds."""
    if len(xs) <= n or n < 1:
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y == y]
        ys_ = [y for _, y in pts]
        return Buckets([x for x, _ in pts], ys_, ys_, ys_)
    x0, x1 = xs[0], xs[-1]
    width = (x1 - x0) / n
    out = Buckets([], [], [], [])
    start = 0
    for b in range(1, n + 1):
        end = len(xs) if b == n else bisect_left(xs, x0 + b * width, start)
        if end > start:  # a gap in the steps (log interval, a resume) leaves a bucket empty
            seg = ys[start:end]
            total = sum(seg)
            if total != total:  # NaN inside: drop those points (rare: a metric the trainer did not log)
                keep = [i for i, y in enumerate(seg) if y == y]
                if not keep:
                    start = end
                    continue
                seg = [seg[i] for i in keep]
                total = sum(seg)
                out.x.append(sum(xs[start + i] for i in keep) / len(keep))
            else:
                out.x.append(sum(xs[start:end]) / (end - start))
            out.lo.append(min(seg))
            out.hi.append(max(seg))
            out.mean.append(total / len(seg))
        start = end
    return out


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing: the first points are not pulled toward zero.
    weight 0 returns the values; NaN points are skipped (the average carries on over them)."""
    if weight <= 0:
        return list(values)
    out, last, n = [], 0.0, 0
    for v in values:
        if v == v:
            last = last * weight + (1 - weight) * v
            n += 1
        out.append(last / (1 - weight ** n) if n else v)
    return out


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    i = int(pos)
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (pos - i)


def y_range(xs: Sequence[float], ys: Sequence[float], head: float = 0.2, q: float = 0.01,
            min_points: int = 20, keep: Sequence[float] = ()) -> tuple[float, float]:
    """The y range to show: the data after the first `head` of the x range, between its `q` and `1 - q`
    quantiles, plus the last point, with a little room above and below.

    A run's loss falls from ~9 to ~3 in its first few percent and then creeps down for hours; scaled to the
    whole range that creep is a flat line at the bottom. The opening drop leaves the chart through the top (the
    chart's title keeps the first and lowest values), isolated spikes are cut, and the newest value (and any
    in `keep`: each compared run's newest) is always in view. Short series (fewer than `min_points`) are
    shown whole."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y == y and x == x]
    if not pts:
        return 0.0, 1.0
    if len(pts) >= min_points:
        cut = pts[0][0] + head * (pts[-1][0] - pts[0][0])
        tail = sorted(y for x, y in pts if x >= cut)
        lo, hi = quantile(tail, q), quantile(tail, 1 - q)
        ends = [pts[-1][1], *(k for k in keep if k == k)]
        lo, hi = min(lo, *ends), max(hi, *ends)
    else:
        lo, hi = min(y for _, y in pts), max(y for _, y in pts)
    # Room above and below; at least 1% of the values' size, so float noise on a constant (a fixed grad clip,
    # a steady throughput) is a flat line, not a saw-tooth spanning the whole height.
    pad = max((hi - lo) * 0.05, max(abs(lo), abs(hi)) * 0.01, 1e-12)
    return lo - pad, hi + pad


def clamp(values: Sequence[float], lo: float, hi: float) -> list[float]:
    """Points outside the range drawn on its edge: the line leaves the chart there instead of vanishing."""
    return [min(max(v, lo), hi) if v == v else v for v in values]


def log10s(values: Sequence[float]) -> list[float]:
    """log10 of each value; zero, negative and NaN values become NaN (not drawn on a log scale)."""
    return [math.log10(v) if v == v and v > 0 else math.nan for v in values]


def nice_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Tick positions at multiples of 1, 2 or 5 x 10^k inside [lo, hi], at most `max_ticks` of them."""
    if not (hi > lo) or max_ticks < 1:
        return []
    for k in range(math.floor(math.log10((hi - lo) / max(max_ticks, 1))) - 1, 400):
        for m in (1, 2, 5):
            step = m * 10.0 ** k
            first = math.ceil(lo / step - 1e-9)
            last = math.floor(hi / step + 1e-9)
            if last - first + 1 <= max_ticks:
                return [round(i * step, 12) for i in range(first, last + 1)]
    return []


def log_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Ticks for a log axis, as log10 positions in [lo, hi] (themselves log10 values): 1, 2, 5 x 10^k when
    they fit, else powers of ten; a range too narrow for either gets round values (2.1, 2.2, 2.3)."""
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [math.log10(m) + k for k in range(math.floor(lo), math.ceil(hi) + 1) for m in mantissas]
        ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
        if 2 <= len(ticks) <= max_ticks:
            return ticks
    if hi - lo > 1:  # several decades and room for few ticks: every few powers of ten
        return nice_ticks(lo, hi, max_ticks)
    return [math.log10(v) for v in nice_ticks(10 ** lo, 10 ** hi, max_ticks) if v > 0]


def label(v: float, spacing: float = 0.0) -> str:
    """A short tick label: 12k, 1.5M, 3e-4, 2.25. `spacing` (between neighbouring ticks) decides how many
    digits tell the ticks apart; 0 means a lone tick."""
    a = abs(v)
    if a == 0:
        return "0"
    exp = math.floor(math.log10(a))
    gap = math.floor(math.log10(spacing)) if spacing > 0 else exp
    if a >= 1000:
        for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                digits = min(max(0, round(math.log10(div)) - gap), 2)
                return f"{v / div:.{digits}f}".rstrip("0").rstrip(".") + suffix if digits else f"{v / div:.0f}{suffix}"
    if a < 0.01:
        return f"{v:.{min(max(0, exp - gap), 2)}e}".replace("e-0", "e-")
    return f"{v:.{min(max(0, -gap), 4)}f}"


def labels(ticks: Sequence[float], log: bool = False) -> list[str]:
    """Labels for ticks on one axis (on a log axis the ticks are log10 positions)."""
    values = [10 ** t for t in ticks] if log else list(ticks)
    if log and len(values) > 1 and values[-1] / values[0] >= 10:  # decades apart: each label on its own
        return [label(v, v) for v in values]
    spacing = min((b - a for a, b in zip(values, values[1:], strict=False)), default=0.0)
    return [label(v, spacing) for v in values]


@dataclass(frozen=True)
class Line:
    x: list[float]
    y: list[float]
    style: str
    marker: str | None = None  # also a marker at each point (sparse series: a validation loss)


@dataclass(frozen=True)
class Plan:
    """Everything one chart draws, in plot coordinates (log10 of the values on a log scale)."""
    lines: tuple[Line, ...]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_ticks: tuple[float, ...]
    x_labels: tuple[str, ...]
    y_ticks: tuple[float, ...]
    y_labels: tuple[str, ...]
    marks: tuple[float, ...]  # x positions of vertical markers (resumes)


@dataclass(frozen=True)
class Series:
    """One run's curve for one metric, ready to plan: its x (steps or tokens) and values, and styles."""
    x: Sequence[float]
    y: Sequence[float]
    style: str               # the smoothed (or only) line
    raw_style: str | None    # the faint raw line under it; None: not drawn
    marks: tuple[float, ...] = ()
    smooth: bool = True      # False: always drawn as measured (a validation loss: few points, no noise to hide)
    marker: str | None = None


def plan(series: Sequence[Series], columns: int, rows: int, smoothing: float, log: bool) -> Plan:
    """The chart for `series` in a plot area of `columns` x `rows` cells (braille: 2 x 4 dots a cell)."""
    buckets = max(2 * columns, 2)
    lines: list[Line] = []
    all_x: list[float] = []
    range_x: list[float] = []
    range_y: list[float] = []
    newest: list[float] = []
    for s in series:
        y = log10s(s.y) if log else list(s.y)
        b = downsample(s.x, y, buckets)
        if not b.x:
            continue
        weight = smoothing if s.smooth else 0.0
        smooth = ema(b.mean, weight)
        if s.raw_style and weight > 0:
            # The raw band: through each bucket's lowest and highest point, so noise and spikes stay visible.
            rx = [x for x in b.x for _ in (0, 1)]
            ry = [v for pair in zip(b.lo, b.hi, strict=False) for v in pair]
            lines.append(Line(rx, ry, s.raw_style))
        lines.append(Line(b.x, smooth, s.style, s.marker))
        all_x += (s.x[0], s.x[-1])  # the data's own ends, not its first and last buckets' middles
        range_x += b.x
        range_y += smooth
        newest.append(range_y[-1])
    if not all_x:
        return Plan((), (0.0, 1.0), (0.0, 1.0), (), (), (), (), ())
    x_lo, x_hi = min(all_x), max(all_x)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    order = sorted(range(len(range_x)), key=range_x.__getitem__)
    y_lo, y_hi = y_range([range_x[i] for i in order], [range_y[i] for i in order], keep=newest)
    lines = [Line(ln.x, clamp(ln.y, y_lo, y_hi), ln.style, ln.marker) for ln in lines]
    x_ticks = nice_ticks(x_lo, x_hi, max(2, columns // 10))
    y_ticks = (log_ticks if log else nice_ticks)(y_lo, y_hi, max(2, rows // 2))
    marks = tuple(m for s in series for m in s.marks if x_lo <= m <= x_hi)
    return Plan(tuple(lines), (x_lo, x_hi), (y_lo, y_hi), tuple(x_ticks), tuple(labels(x_ticks)),
                tuple(y_ticks), tuple(labels(y_ticks, log)), marks)


@dataclass(frozen=True)
class ChartSettings:
    """How the Runs tab draws its charts; the keys change it, every chart (single run or compared) follows."""
    smoothing: float = DEFAULT_SMOOTHING
    log: bool = False
    by_tokens: bool = False   # x axis: steps, or tokens seen (fairer across runs with different batches)
    main: int = 0             # which metric gets the big chart (the only one in a small terminal)

    def next_smoothing(self) -> ChartSettings:
        later = [w for w in SMOOTHING_STEPS if w > self.smoothing]
        return replace(self, smoothing=later[0] if later else SMOOTHING_STEPS[0])

    def describe(self) -> str:
        smooth = f"EMA {self.smoothing:g}" if self.smoothing else "raw"
        return f"{smooth} · {'log' if self.log else 'linear'} · by {'tokens' if self.by_tokens else 'step'}"
