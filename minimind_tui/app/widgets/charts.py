"""The Runs tab's charts: loss, lr, grad norm, tokens/s and memory by step (or tokens seen), for one run or several
overlaid, drawn with textual-plot (braille lines, real axes with labelled ticks).

What is drawn is worked out in plotting.py (downsampling, smoothing, y range, ticks); this module only lays the
charts out for the space they get and hands each plan to the plotting widget. textual-plot imports numpy, so
this module is imported when the first curves arrive, not before the dashboard's first frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Container, Grid, Vertical
from textual.widgets import Static
from textual_plot import HiResMode, PlotWidget
from textual_plot.axis_formatter import AxisFormatter

from .. import plotting
from ..curves import METRICS, Curves, Metric

# Line colours of compared runs, in marking order (readable on dark and light themes, and in 256 colours).
PALETTE = ("#5fd7ff", "#ffaf5f", "#d787ff", "#87d75f", "#ff8787", "#d7d75f", "#5fafaf", "#af87ff")
RAW_STYLE = "#3a6f80"  # the single run's unsmoothed line: the smoothed one is drawn bold over it
RESUME_STYLE = "yellow"
# The validation loss (eval events), drawn on the loss chart as measured: one run's in its own colour, compared
# runs' in theirs, with a marker at each evaluation.
VAL_STYLE = "bold #ff5faf"
VAL_MARKER = "◆"
# Below this width or height the charts take turns (v shows the next); above it they share a grid.
WIDE_WIDTH, WIDE_HEIGHT = 120, 14


@dataclass(frozen=True)
class ChartRun:
    """One run's curves as the charts show them."""
    name: str
    curves: Curves
    color: str = PALETTE[0]
    evals: tuple[tuple[int, float], ...] = ()  # (step, validation loss), by step


class _TickLabels(AxisFormatter):
    """Labels for ticks plotting.plan already chose (the plot is always given its ticks)."""

    def __init__(self):
        self.labels: dict[float, str] = {}

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        return list(self.labels)

    def get_labels_for_ticks(self, ticks) -> list[str]:
        return [self.labels.get(t, "") for t in ticks]


class Plot(PlotWidget, can_focus=False):
    """textual-plot's widget without focus, keys or mouse zoom (the Runs tab's keys act on every chart), with
    the margins cut to what a small terminal can spare: no room above, one row of x labels below."""

    def __init__(self, **kwargs):
        super().__init__(allow_pan_and_zoom=False, **kwargs)
        self._x_labels, self._y_labels = _TickLabels(), _TickLabels()
        self.set_x_formatter(self._x_labels)
        self.set_y_formatter(self._y_labels)
        # Without watchers: PlotWidget's own on_mount lays its grid out from these.
        self.set_reactive(Plot.margin_top, 0)
        self.set_reactive(Plot.margin_bottom, 1)
        self.set_reactive(Plot.margin_left, 6)

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # PlotWidget.on_mount, called here only while the plot still has its children:
        if self.query(Grid):     # an app closing as the charts are first shown has already removed them
            super().on_mount()

    def area(self) -> tuple[int, int]:
        """Columns and rows inside the axes box."""
        return max(self.size.width - self.margin_left - 2, 0), max(self.size.height - self.margin_bottom - 2, 0)

    def draw(self, plan: plotting.Plan) -> None:
        margin = max((len(t) for t in plan.y_labels), default=3) + 2
        if margin != self.margin_left:
            self.margin_left = margin
            # Its canvases take the new width in the next layout pass: draw again after it.
            self.call_after_refresh(self.refresh, layout=True)
        self.clear()
        for line in plan.lines:
            self.plot(line.x, line.y, line_style=line.style, hires_mode=HiResMode.BRAILLE)
            if line.marker:
                self.scatter(line.x, line.y, marker=line.marker, marker_style=line.style)
        for x in plan.marks:
            self.add_v_line(x, RESUME_STYLE)
        self._x_labels.labels = dict(zip(plan.x_ticks, plan.x_labels, strict=True))
        self._y_labels.labels = dict(zip(plan.y_ticks, plan.y_labels, strict=True))
        self.set_xticks(plan.x_ticks)
        self.set_yticks(plan.y_ticks)
        self.set_xlimits(*plan.x_range)
        self.set_ylimits(*plan.y_range)


def _finite(values) -> list[float]:
    return [v for v in values if v == v]


def metric_title(metric: Metric, curves: Curves | None, evals: Sequence[tuple[int, float]] = ()) -> Text:
    """The chart's name and the run's current value (for the loss also its lowest and first, and the latest
    validation loss: the legend of its line)."""
    name = curves.mem_label() if metric.key == "mem" and curves is not None else metric.title
    values = _finite(curves.values(metric.key)) if curves is not None else []
    if not values:
        title = Text.assemble((f"{name} ", "bold"), ("—", "dim"))
    else:
        title = Text.assemble((f"{name} ", "bold"), (f"{values[-1]:{metric.fmt}}", "bold cyan"))
        if metric.key == "loss":
            title.append(f"  min {min(values):.3f}  first {values[0]:.3f}", style="dim")
    if metric.key == "loss" and evals:
        title.append(f"  {VAL_MARKER} val {evals[-1][1]:.3f}", style=VAL_STYLE)
    return title


class MetricChart(Vertical):
    """A title line and a plot of one metric."""

    def __init__(self, metric: Metric, **kwargs):
        super().__init__(classes="metric-chart", **kwargs)
        self.metric = metric
        self._series: list[plotting.Series] = []
        self._settings = plotting.ChartSettings()
        self._drawn: tuple | None = None  # what the plot shows (inputs and size): skip identical redraws

    def compose(self) -> ComposeResult:
        yield Static("", classes="chart-title")
        yield Plot()

    def show(self, title: Text, series: list[plotting.Series], settings: plotting.ChartSettings) -> None:
        self.query_one(".chart-title", Static).update(title)
        self._series, self._settings = series, settings
        self._redraw()

    def on_resize(self) -> None:
        self.call_after_refresh(self._redraw)  # the plot's own size is known after this layout pass

    def _redraw(self) -> None:
        plots = self.query(Plot)
        if not plots:  # removed before this after-refresh callback ran (a closing app, a rebuilt grid)
            return
        plot = plots.first()
        columns, rows = plot.area()
        if not self.display or columns < 4 or rows < 1:
            return
        key = (tuple(map(id, self._series)), self._settings, columns, rows)
        if key == self._drawn:
            return
        self._drawn = key
        plot.draw(plotting.plan(self._series, columns, rows, self._settings.smoothing, self._settings.log))


class ChartGrid(Container):
    """Every metric's chart: side by side when there is room (the main one large), else one at a time."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.runs: list[ChartRun] = []
        self.settings = plotting.ChartSettings()
        self._series_cache: dict[tuple, plotting.Series] = {}

    def compose(self) -> ComposeResult:
        for m in METRICS:
            yield MetricChart(m, id=f"chart-{m.key}")

    def on_mount(self) -> None:
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    def show(self, runs: Sequence[ChartRun], settings: plotting.ChartSettings) -> None:
        changed_main = settings.main != self.settings.main
        self.runs, self.settings = list(runs), settings
        if changed_main:
            self._layout()
        self._draw()

    @property
    def wide(self) -> bool:
        return self.size.width >= WIDE_WIDTH and self.size.height >= WIDE_HEIGHT

    def _layout(self) -> None:
        main = METRICS[self.settings.main % len(METRICS)].key
        self.set_class(self.wide, "-wide")
        for chart in self.query(MetricChart):
            chart.set_class(chart.metric.key == main, "-main")
            chart.display = self.wide or chart.metric.key == main
        first = next((c for c in self.query(MetricChart) if c.metric.key == main), None)
        if first is None:  # its charts are already gone: a mount or resize arriving while the app closes
            return
        if self.children and self.children[0] is not first:
            self.move_child(first, before=0)  # the grid places the large chart in its first cell
        self._draw()

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        single = len(self.runs) == 1
        main = self.settings.main % len(METRICS)
        charts = {c.metric.key: c for c in self.query(MetricChart)}  # all of them, unless being taken down
        for i, metric in enumerate(METRICS):
            chart = charts.get(metric.key)
            if chart is None or not chart.display:
                continue
            series = [self._series(run, metric, single) for run in self.runs]
            if metric.key == "loss":
                series += [self._val_series(run, single) for run in self.runs if run.evals]
            title = metric_title(metric, self.runs[0].curves, self.runs[0].evals) if single else \
                Text(metric.title, style="bold")
            settings = self.settings if metric.smooth else replace(self.settings, smoothing=0.0)
            if i == main:
                title.append(f"   {settings.describe()}", style="italic")
                if not self.wide:
                    title.append(" · v next", style="dim")
            chart.show(title, series, settings)

    def _series(self, run: ChartRun, metric: Metric, single: bool) -> plotting.Series:
        """The run's curve for the metric; the same object while its curves and the x axis are unchanged."""
        key = (run.name, run.curves.version, id(run.curves), metric.key, self.settings.by_tokens, run.color, single)
        found = self._series_cache.get(key)
        if found is None:
            curves, by_tokens = run.curves, self.settings.by_tokens
            marks = tuple(curves.x_at_step(r, by_tokens) for r in curves.resumes)
            found = plotting.Series(curves.x(by_tokens), curves.values(metric.key), f"bold {run.color}",
                                    RAW_STYLE if single else None, marks)
            self._remember(key, found)
        return found

    def _val_series(self, run: ChartRun, single: bool) -> plotting.Series:
        """The run's validation loss, unsmoothed, a marker at each evaluation."""
        key = ("val", run.name, run.evals, id(run.curves), self.settings.by_tokens, run.color, single)
        found = self._series_cache.get(key)
        if found is None:
            x = [run.curves.x_at_step(step, self.settings.by_tokens) for step, _ in run.evals]
            found = plotting.Series(x, [loss for _, loss in run.evals], VAL_STYLE if single else f"bold {run.color}",
                                    None, smooth=False, marker=VAL_MARKER)
            self._remember(key, found)
        return found

    def _remember(self, key: tuple, series: plotting.Series) -> None:
        if len(self._series_cache) > 64:
            self._series_cache.clear()
        self._series_cache[key] = series
