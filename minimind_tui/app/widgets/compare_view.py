"""The Runs tab's comparison: the marked runs' curves overlaid (a colour each, named in the legend), and a table of
their final and lowest loss and of every setting that differs between them (from each run's config.json)."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.widgets import DataTable, Static

from ..compare import config_diff
from ..curves import loss_stats
from ..plotting import ChartSettings
from ..run_watch import Compared

# Shown before the settings that differ (each run's steps are in the runs table just above).
RESULT_ROWS = ("loss final / min",)


def palette() -> tuple[str, ...]:
    from .charts import PALETTE  # the charts module imports numpy: only once a comparison is shown
    return PALETTE


def comparison_rows(compared: tuple[Compared, ...]) -> list[tuple[str, list[str]]]:
    """The table: each run's final and lowest loss, then the settings that differ, one value per run."""
    losses = []
    for c in compared:
        final, low = loss_stats(c.curves)
        losses.append(f"{final:.4f} / {low:.4f}" if final is not None and low is not None else "—")
    return [(RESULT_ROWS[0], losses), *config_diff([c.config for c in compared])]


class CompareView(Vertical):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.compared: tuple[Compared, ...] = ()
        self.settings = ChartSettings()
        self._table_rows: list | None = None

    def compose(self) -> ComposeResult:
        yield Static("mark runs with m or space, then press c", id="compare-legend")
        yield Container(id="compare-charts")
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True, show_cursor=False)

    def show(self, compared: tuple[Compared, ...], settings: ChartSettings) -> None:
        self.compared, self.settings = compared, settings
        if not compared:
            return
        from .charts import ChartGrid, ChartRun
        colors = palette()
        legend = Text()
        for i, c in enumerate(compared):
            legend.append("━━ ", style=f"bold {colors[i % len(colors)]}")
            legend.append(c.run_id + "   ")
        if any(c.eval_points for c in compared):
            from .charts import VAL_MARKER
            legend.append(f"{VAL_MARKER} validation loss", style="dim")
        self.query_one("#compare-legend", Static).update(legend)
        holder = self.query_one("#compare-charts", Container)
        if not holder.children:
            holder.mount(ChartGrid(id="compare-grid"))
        runs = [ChartRun(c.run_id, c.curves, colors[i % len(colors)], c.eval_points) for i, c in enumerate(compared)]
        holder.query_one(ChartGrid).show(runs, settings)
        self._fill_table(compared, colors)

    def _fill_table(self, compared: tuple[Compared, ...], colors: tuple[str, ...]) -> None:
        rows = comparison_rows(compared)
        names = [c.run_id for c in compared]
        if (names, rows) == self._table_rows:
            return
        self._table_rows = (names, rows)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        # Fixed widths: auto widths do not always recover when the columns are rebuilt.
        table.add_column("", key="setting", width=max(len(key) for key, _ in rows))
        for i, name in enumerate(names):
            width = max(len(name), *(len(values[i]) for _, values in rows))
            table.add_column(Text(name, style=f"bold {colors[i % len(colors)]}"), key=f"run{i}", width=width)
        for key, values in rows:
            table.add_row(Text(key, style="bold" if key in RESULT_ROWS else "dim"), *values)
