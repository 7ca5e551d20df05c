"""The Runs tab: a table of every run, and the live monitor of the highlighted one."""
from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from minimind_tui.runs.summary import RunSummary, format_duration

from .run_monitor import STATUS_STYLE, RunMonitor

COLUMNS = ("run", "status", "mode", "dataset", "loss", "steps", "time")
# Below this width the dataset column is dropped so the rest still fits in 80 columns.
NARROW_WIDTH = 100
NARROW_COLUMNS = ("run", "status", "mode", "loss", "steps", "time")
# Fixed widths: auto widths do not recover when the columns are rebuilt on a resize.
WIDTHS = {"run": 24, "status": 10, "mode": 8, "dataset": 20, "loss": 6, "steps": 11, "time": 7}


class RunsTab(Vertical):
    class RunSelected(Message):
        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.summaries: list[RunSummary] = []
        self.selected: str | None = None
        self.columns: tuple[str, ...] = COLUMNS

    def compose(self) -> ComposeResult:
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        _add_columns(table, self.columns)
        yield table
        yield RunMonitor(id="run-monitor")

    def on_resize(self) -> None:
        columns = NARROW_COLUMNS if self.size.width < NARROW_WIDTH else COLUMNS
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
            row = _row(s)
            table.add_row(*(row[COLUMNS.index(c)] for c in self.columns), key=s.run_id)
        if self.selected is not None:
            self._move_cursor(self.selected)

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
    icon, style = STATUS_STYLE.get(s.status, ("?", ""))
    loss = f"{s.loss:.3f}" if isinstance(s.loss, (int, float)) else "—"
    steps = f"{s.step:,}/{s.total:,}" if s.step is not None and s.total else (f"{s.step:,}" if s.step else "—")
    return (s.run_id, Text(f"{icon} {s.status}", style=style), s.mode or "?", s.dataset or "?", loss, steps,
            format_duration(s.duration_s))
