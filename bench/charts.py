"""Chart figures: building a run's step-ordered curves from 100,000 step events, and working out what the five
charts draw (downsampling to the chart's width, EMA, y range, ticks) at 80 and 160 columns.

Run: .venv/bin/python bench/charts.py   (figures go in bench/RESULTS.md)
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "app"))

STEPS = 100_000


def median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from canned_curves import step_fields

    from minimind_tui.app.curves import METRICS, RunSeries
    from minimind_tui.app.plotting import Series, plan

    events = [{"event": "step", **step_fields(i, STEPS, 5e-4, 16, 0)} for i in range(1, STEPS + 1)]
    build = median_time(lambda: RunSeries().add(events))
    series = RunSeries()
    series.add(events)
    curves = series.snapshot()
    print(f"curves from {STEPS:,} step events      {build * 1000:.0f} ms  ({STEPS / build:,.0f} events/s)")
    # The plot areas of the 80x24 layout (one chart) and of the 160x50 grid (the large chart).
    for columns, rows in ((74, 5), (72, 27)):
        def draw_all(columns=columns, rows=rows):
            for m in METRICS:
                plan([Series(curves.x(False), curves.values(m.key), "cyan", "grey")], columns, rows, 0.6, False)
        seconds = median_time(draw_all)
        print(f"plan 5 charts x {STEPS:,} points, {columns} columns  {seconds * 1000:.0f} ms  "
              f"({seconds * 1000 / len(METRICS):.1f} ms a chart)")


if __name__ == "__main__":
    main()
