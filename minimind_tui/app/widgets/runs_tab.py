"""The Runs tab: a table of every run, and the live monitor of the highlighted one, or the comparison of the
runs marked in the table. The chart keys (smoothing, log scale, x axis, which chart) act on both views."""
from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from minimind_tui.runs.events import RunStatus
from minimind_tui.runs.summary import RunSummary, format_duration

from ..curves import METRICS
from ..plotting import ChartSettings
from ..run_watch import Compared
from .compare_view import CompareView
from .run_monitor import STATUS_STYLE, RunMonitor, generation_name

COLUMNS = ("run", "status", "mode", "gen", "dataset", "loss", "steps", "time", "note")
# The columns shown at 80 columns; the others join, in this order, while the table has room for them.
NARROW_COLUMNS = ("run", "status", "mode", "loss", "steps", "time")
OPTIONAL = ("dataset", "gen", "note")
# Fixed widths: auto widths do not recover when the columns are rebuilt on a resize.
WIDTHS = {"run": 26, "status": 10, "mode": 8, "gen": 11, "dataset": 20, "loss": 6, "steps": 11, "time": 7,
          "note": 30}
CELL_PADDING = 2  # DataTable's one blank column each side of a cell


def columns_for(width: int) -> tuple[str, ...]:
    """The columns that fit in `width` cells: the narrow set, then the optional ones while there is room."""
    shown = set(NARROW_COLUMNS)
    used = sum(WIDTHS[c] + CELL_PADDING for c in shown)
    for name in OPTIONAL:
        if used + WIDTHS[name] + CELL_PADDING <= width:
            shown.add(name)
            used += WIDTHS[name] + CELL_PADDING
    return tuple(c for c in COLUMNS if c in shown)


class RunsTab(Vertical):
    BINDINGS = [
        Binding("m,space", "mark", "Mark", tooltip="mark or unmark the highlighted run for comparison"),
        Binding("c", "compare", "Compare", tooltip="overlay the marked runs' curves (again: back to one run)"),
        Binding("e", "smoothing", "Smoothing", show=False),
        Binding("l", "log_scale", "Log scale", show=False),
        Binding("x", "x_axis", "Steps/tokens", show=False),
        Binding("v", "next_chart", "Next chart", show=False),
    ]

    class RunSelected(Message):
        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    class CompareChanged(Message):
        """The runs to compare changed (empty: back to the single-run monitor)."""

        def __init__(self, run_ids: tuple[str, ...]):
            super().__init__()
            self.run_ids = run_ids

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.summaries: list[RunSummary] = []
        self.selected: str | None = None
        self.columns: tuple[str, ...] = NARROW_COLUMNS
        self.marked: list[str] = []   # run ids, in the order marked (their colours in the comparison)
        self.comparing = False
        self.settings = ChartSettings()

    def compose(self) -> ComposeResult:
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        _add_columns(table, self.columns)
        yield table
        yield RunMonitor(id="run-monitor")
        compare = CompareView(id="compare-view")
        compare.display = False
        yield compare

    def on_resize(self) -> None:
        columns = columns_for(self.size.width)
        if columns != self.columns:
            self.columns = columns
            table = self.query_one(DataTable)
            table.clear(columns=True)
            _add_columns(table, columns)
            self._fill(self.summaries)

    def update_runs(self, summaries: list[RunSummary]) -> None:
        """Replace the rows (attributes down from the app's polling worker), keeping the selection."""
        if [_row(s) for s in summaries] == [_row(s) for s in self.summaries]:
            return
        self.summaries = summaries
        self._fill(summaries)

    def _fill(self, summaries: list[RunSummary]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for s in summaries:
            row = (self._run_cell(s.run_id), *_row(s)[1:])
            table.add_row(*(row[COLUMNS.index(c)] for c in self.columns), key=s.run_id)
        if self.selected is not None:
            self._move_cursor(self.selected)

    def _run_cell(self, run_id: str) -> Text:
        """The run's name, after a mark in its comparison colour when it is marked."""
        if run_id not in self.marked:
            return Text(run_id)
        from .compare_view import palette
        colors = palette()
        return Text.assemble(("● ", f"bold {colors[self.marked.index(run_id) % len(colors)]}"), run_id)

    # ---- comparing and chart keys ------------------------------------------------------------------------
    def action_mark(self) -> None:
        run_id = self._cursor_run()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self._fill(self.summaries)
        if self.comparing:
            if len(self.marked) < 2:
                self._set_comparing(False)
            else:
                self.post_message(self.CompareChanged(tuple(self.marked)))

    def action_compare(self) -> None:
        if not self.comparing and len(self.marked) < 2:
            self.notify("Mark two or more runs first (m or space on each), then press c.", severity="warning")
            return
        self._set_comparing(not self.comparing)

    def _set_comparing(self, on: bool) -> None:
        self.comparing = on
        self.query_one(RunMonitor).display = not on
        self.query_one(CompareView).display = on
        self.post_message(self.CompareChanged(tuple(self.marked) if on else ()))

    def show_comparison(self, compared: tuple[Compared, ...]) -> None:
        if self.comparing:
            self.query_one(CompareView).show(compared, self.settings)

    def action_smoothing(self) -> None:
        self._set_settings(self.settings.next_smoothing())

    def action_log_scale(self) -> None:
        self._set_settings(replace(self.settings, log=not self.settings.log))

    def action_x_axis(self) -> None:
        self._set_settings(replace(self.settings, by_tokens=not self.settings.by_tokens))

    def action_next_chart(self) -> None:
        self._set_settings(replace(self.settings, main=(self.settings.main + 1) % len(METRICS)))

    def _set_settings(self, settings: ChartSettings) -> None:
        self.settings = settings
        self.query_one(RunMonitor).set_chart_settings(settings)
        view = self.query_one(CompareView)
        view.show(view.compared, settings)

    def _cursor_run(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # no row under the cursor
            return None

    def select(self, run_id: str) -> None:
        self.selected = run_id
        self._move_cursor(run_id)

    def _move_cursor(self, run_id: str) -> None:
        table = self.query_one(DataTable)
        try:
            row = table.get_row_index(run_id)
        except Exception:  # not listed yet (a run still starting)
            return
        if table.cursor_row != row:
            table.move_cursor(row=row)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        run_id = event.row_key.value if event.row_key is not None else None
        if run_id and run_id != self.selected:
            self.selected = run_id
            self.post_message(self.RunSelected(run_id))


def _add_columns(table: DataTable, columns: tuple[str, ...]) -> None:
    for name in columns:
        table.add_column(name, width=WIDTHS[name], key=name)


def _row(s: RunSummary) -> tuple:
    """The cells of every column in COLUMNS' order."""
    if s.status is RunStatus.UNREADABLE:  # the reason where the dataset goes (the monitor and a notice: whole)
        return (s.run_id, Text(str(s.status), style=STATUS_STYLE[s.status][1]), s.mode or "?", "—",
                Text(s.reason, style="red"), "—", "—", "—", "")
    icon, style = STATUS_STYLE.get(s.status, ("?", ""))
    loss = f"{s.loss:.3f}" if isinstance(s.loss, (int, float)) else "—"
    steps = f"{s.step:,}/{s.total:,}" if s.step is not None and s.total else (f"{s.step:,}" if s.step else "—")
    note = Text(s.note.splitlines()[0] if s.note else "", style="italic")
    return (s.run_id, Text(f"{icon} {s.status}", style=style), s.mode or "?", generation_name(s), s.dataset or "?",
            loss, steps, format_duration(s.duration_s), note)
