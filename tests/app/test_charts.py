"""The Runs tab's charts and comparison, driven by their keys: smoothing, log scale, x axis, next chart, marking
runs and comparing them; the header's averaged throughput; the bell when a run finishes."""
from __future__ import annotations

import os

import pytest
from canned import T0, make_run
from canned_curves import write_curve_run
from chartkit import OTHER, RESUMED, charts, drawn, open_run, plot_of, two_runs
from testkit import Posted, wait_for
from textual.widgets import DataTable, Static

from minimind_tui.app.curves import RunSeries
from minimind_tui.app.widgets.charts import VAL_MARKER
from minimind_tui.app.widgets.compare_view import CompareView
from minimind_tui.app.widgets.run_monitor import RunMonitor, progress_text
from minimind_tui.app.widgets.runs_tab import RunsTab
from minimind_tui.runs import events, layout
from minimind_tui.runs.events import RunStatus
from minimind_tui.runs.summary import RunSummary


async def test_smoothing_log_scale_and_x_axis_keys_redraw_every_chart(make_app, project):
    two_runs(project)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await open_run(pilot, RESUMED)
        loss = charts(app)["loss"]
        assert loss._settings.smoothing == 0.6 and len(plot_of(loss)._datasets) == 2  # raw band + smoothed
        assert "EMA 0.6 · linear · by step" in str(loss.query_one(".chart-title", Static).render())

        await pilot.press("e")
        await wait_for(pilot, lambda: drawn(app) and loss._settings.smoothing == 0.8, "smoothing 0.8")
        assert "EMA 0.8" in str(loss.query_one(".chart-title", Static).render())
        assert charts(app)["lr"]._settings.smoothing == 0.0  # lr is a schedule, not noise: never smoothed

        linear_top = plot_of(loss)._y_max
        await pilot.press("l")
        await wait_for(pilot, lambda: drawn(app) and loss._settings.log, "log scale")
        assert plot_of(loss)._y_max < 1 < linear_top  # log10 of a loss around 2-8
        assert all(label[0].isdigit() for label in plot_of(loss)._y_labels.labels.values())

        await pilot.press("x")
        await wait_for(pilot, lambda: drawn(app) and loss._settings.by_tokens, "by tokens")
        assert plot_of(loss)._x_max > 100_000  # tokens seen, not 400 steps
        assert "by tokens" in str(loss.query_one(".chart-title", Static).render())


async def test_v_shows_the_next_chart_alone_in_a_small_terminal(make_app, project):
    two_runs(project)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run(pilot, RESUMED)
        assert [k for k, c in charts(app).items() if c.display] == ["loss"]
        await pilot.press("v")
        await wait_for(pilot, lambda: charts(app)["lr"].display and drawn(app), "lr chart")
        assert [k for k, c in charts(app).items() if c.display] == ["lr"]
        assert plot_of(charts(app)["lr"])._y_labels.labels  # drawn with labelled ticks


async def test_a_resume_is_marked_where_the_replayed_steps_start(make_app, project):
    two_runs(project)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run(pilot, RESUMED)
        view = app.query_one(RunMonitor).view
        assert view.curves.resumes == (200,) and list(view.curves.steps) == list(range(1, 401))
        assert [v.x for v in plot_of(charts(app)["loss"])._v_lines] == [200.0]
        assert "resumed at step 200" in str(app.query_one("#monitor-notes", Static).render())


async def test_marked_runs_are_compared_with_a_legend_and_the_settings_that_differ(make_app, project):
    two_runs(project)
    app, seen = make_app(), Posted()
    async with app.run_test(size=(160, 50), message_hook=seen) as pilot:
        await open_run(pilot, OTHER)
        tab = app.query_one(RunsTab)
        await pilot.press("c")  # nothing marked yet: it says what to do
        await wait_for(pilot, lambda: seen.notices(), "the notice")
        assert not tab.comparing and any("Mark two or more runs" in n for n in seen.notices())

        await pilot.press("m", "down", "space", "c")
        view = app.query_one(CompareView)
        await wait_for(pilot, lambda: view.display and len(view.compared) == 2 and drawn(app, "#compare-grid"),
                       "comparison drawn")
        assert tab.marked == [OTHER, RESUMED]
        assert not app.query_one(RunMonitor).display
        legend = str(view.query_one("#compare-legend", Static).render())
        assert OTHER in legend and RESUMED in legend
        loss = charts(app, "#compare-grid")["loss"]
        assert len(plot_of(loss)._datasets) == 2  # one smoothed line per run
        rows = {str(r[0]): [str(c) for c in r[1:]] for r in
                (view.query_one(DataTable).get_row_at(i) for i in range(view.query_one(DataTable).row_count))}
        assert rows["learning_rate"] == ["0.001", "0.0005"] and rows["batch_size"] == ["32", "16"]
        final, low = rows["loss final / min"][0].split(" / ")
        assert float(low) <= float(final) < 2.5
        assert "dim" not in rows  # the same in both: not listed

        await pilot.press("x")  # the chart keys act on the comparison too
        await wait_for(pilot, lambda: drawn(app, "#compare-grid") and loss._settings.by_tokens, "by tokens")
        assert plot_of(loss)._x_max > 2 * 400 * 16 * 128 * 0.9  # the batch-32 run saw twice the tokens

        await pilot.press("c")
        await wait_for(pilot, lambda: app.query_one(RunMonitor).display and not view.display, "back to one run")
        assert app.compared_runs == ()


async def test_the_validation_loss_is_drawn_as_measured_on_the_loss_chart_with_a_legend(make_app, project):
    write_curve_run(project, RESUMED, eval_every=50, now=T0 - 3600)
    write_curve_run(project, OTHER, lr=1e-3, seed=3, eval_every=100, now=T0 - 1800)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await open_run(pilot, RESUMED)
        loss = charts(app)["loss"]
        val = [d for d in plot_of(loss)._datasets if getattr(d, "marker", None) == VAL_MARKER]
        assert len(val) == 1 and list(val[0].x) == [50, 100, 150, 200, 250, 300, 350, 400]
        evals = app.query_one(RunMonitor).view.eval_points
        # As measured: the smoothing (EMA 0.6) is not applied to it (the opening drop's points leave through the top).
        assert list(val[0].y)[2:] == pytest.approx([v for _, v in evals][2:])
        title = str(loss.query_one(".chart-title", Static).render())
        assert f"{VAL_MARKER} val {evals[-1][1]:.3f}" in title
        assert not [d for d in plot_of(charts(app)["lr"])._datasets if getattr(d, "marker", None)]  # loss only

        await pilot.press("m", "up", "m", "c")  # compared: each run's in its own colour, named in the legend
        view = app.query_one(CompareView)
        await wait_for(pilot, lambda: view.display and len(view.compared) == 2 and drawn(app, "#compare-grid"),
                       "comparison drawn")
        markers = [d for d in plot_of(charts(app, "#compare-grid")["loss"])._datasets
                   if getattr(d, "marker", None) == VAL_MARKER]
        assert sorted(len(d.x) for d in markers) == [4, 8]
        assert "validation loss" in str(view.query_one("#compare-legend", Static).render())


async def test_unmarking_a_compared_run_down_to_one_leaves_the_comparison(make_app, project):
    two_runs(project)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run(pilot, OTHER)
        tab = app.query_one(RunsTab)
        await pilot.press("m", "down", "m", "c")
        await wait_for(pilot, lambda: tab.comparing and app.compared_runs, "comparing")
        await pilot.press("m")
        await wait_for(pilot, lambda: not tab.comparing and app.compared_runs == (), "left the comparison")
        assert app.query_one(RunMonitor).display


def summary(**kw) -> RunSummary:
    fields = dict(run_id="r", status=RunStatus.LIVE, step=100, total=1100, tokens_per_s=5.0, eta_s=1.0,
                  duration_s=60.0)
    return RunSummary(**{**fields, **kw})


def test_the_header_averages_throughput_and_eta_over_the_last_minute():
    s = RunSeries()
    s.add([{"event": "step", "step": i, "loss": 1.0, "tokens_per_s": 1000.0, "step_s": 1.0} for i in range(1, 100)])
    s.add([{"event": "step", "step": 100, "loss": 1.0, "tokens_per_s": 5.0, "step_s": 1.0}])  # one slow window
    text = str(progress_text(summary(), s.snapshot()))
    # 59 steps at 1000 tok/s and one at 5, over 60 s; ETA: 1000 steps left at 1 s a step.
    assert f"{(59 * 1000 + 5) / 60:,.0f} tok/s" in text and "ETA 16m40s" in text
    assert "5 tok/s" not in text
    assert "ETA" not in str(progress_text(summary(eta_s=None), s.snapshot()))  # not live: no ETA
    assert "5 tok/s" in str(progress_text(summary(), None))  # no curves: the trainer's own figure


async def test_a_run_that_finishes_while_watched_rings_the_bell(make_app, project):
    run = make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    app, seen = make_app(), Posted()
    bells = []
    app.bell = lambda: bells.append(1)
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view is not None, "reattach")
        assert app.query_one(RunMonitor).view.summary.status == "live" and not bells
        with open(run / layout.METRICS, "ab") as f:
            f.write(events.encode("end", now=T0, status="done", reason="", step=30))
        app.refresh_runs()
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view.summary.status == "done", "done")
        await wait_for(pilot, lambda: seen.notices("Run done"), "the notice")
        assert bells and seen.notices("Run done") == ["20251101-100000-sft finished"]


def test_the_chart_library_is_not_imported_before_curves_are_shown(tmp_path):
    """textual-plot brings numpy (~0.2 s): the dashboard's first frame, with no run to chart, needs neither."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent(f"""
        import asyncio, sys
        from minimind_tui.app.main import create_app
        from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor

        async def main():
            app = create_app({str(tmp_path)!r}, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(),
                             poll_interval=None, gpu_interval=None, preload_tabs=False)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("2")
                await pilot.pause()
                print(sorted(m for m in ("numpy", "textual_plot") if m in sys.modules))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


async def test_a_chart_grid_whose_charts_are_gone_lays_out_and_draws_nothing():
    """A mount or resize of the grid can arrive while the app closes, after its charts were removed (it raised
    NoMatches at the end of unrelated tests)."""
    from textual.app import App

    from minimind_tui.app.widgets.charts import ChartGrid, MetricChart

    class Host(App):
        def compose(self):
            yield ChartGrid()

    async with Host().run_test(size=(120, 40)) as pilot:
        grid = pilot.app.query_one(ChartGrid)
        await grid.query(MetricChart).last().remove()
        grid.on_resize()  # lays out and draws the charts that are left
        await grid.remove_children()
        grid.on_resize()
        grid.on_mount()
        assert not grid.query(MetricChart)
