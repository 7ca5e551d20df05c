"""Helpers for tests that look at the Runs tab's charts: two canned runs, and waiting until the charts show
what they were last given (they draw after their own layout pass, and again when their tick labels widen)."""
from __future__ import annotations

from canned import T0
from canned_curves import write_curve_run
from testkit import wait_for
from textual.widgets import DataTable

from minimind_tui.app.widgets.run_monitor import RunMonitor
from minimind_tui.app.widgets.runs_tab import RunsTab

RESUMED = "20251101-080000-pretrain"
OTHER = "20251101-090000-pretrain"


def two_runs(project):
    write_curve_run(project, RESUMED, lr=5e-4, batch=16, resume=(300, 200), now=T0 - 3600)
    write_curve_run(project, OTHER, lr=1e-3, batch=32, seed=3, now=T0 - 1800)


def charts(app, within="#monitor-grid"):
    from minimind_tui.app.widgets.charts import MetricChart
    return {c.metric.key: c for c in app.query_one(within).query(MetricChart)}


def drawn(app, within="#monitor-grid") -> bool:
    """Every chart on screen has drawn what it was last given, with its axes' margins laid out."""
    if not app.query(within):
        return False
    shown = [c for c in charts(app, within).values() if c.display]
    return bool(shown) and all(c._drawn is not None and c._drawn[1] == c._settings and
                               c._drawn[0] == tuple(map(id, c._series)) and _laid_out(plot_of(c)) for c in shown)


def _laid_out(plot) -> bool:
    margin = plot.query_one("#margin-left")
    return margin.size.width == plot.margin_left and margin._canvas_size == margin.size and not plot._needs_rerender


def plot_of(chart):
    from minimind_tui.app.widgets.charts import Plot
    return chart.query_one(Plot)


async def open_run(pilot, run_id: str, within="#monitor-grid"):
    await pilot.press("2")
    table = pilot.app.query_one(RunsTab).query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count >= 2, "runs listed")
    table.move_cursor(row=table.get_row_index(run_id))  # as the arrow keys would
    await wait_for(pilot, lambda: (v := pilot.app.query_one(RunMonitor).view) is not None
                   and v.summary.run_id == run_id and drawn(pilot.app, within), f"{run_id} charted")
    await pilot.pause()


async def settle(pilot, within: str = "#monitor-grid") -> None:
    await wait_for(pilot, lambda: drawn(pilot.app, within), "charts drawn")
    for _ in range(3):  # a plot whose tick labels changed width lays its margins out again, then redraws
        await pilot.pause()
