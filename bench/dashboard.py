"""Dashboard figures: time to first paint, time to reattach to a live run, and replay speed of a long run.

Run: .venv/bin/python bench/dashboard.py   (figures go in bench/RESULTS.md, as ratios to a baseline)
First paint = from process start to the first frame Textual composes (the first screen update it would write
to the terminal) of a headless app with the real NVML and psutil monitors, measured in a fresh process each
time; "ready" = Textual's Ready (the widget tree mounted, the figure this bench reported before); "all tabs" =
the Dataset and Chat tabs, built after the first frame, mounted too. Baselines: `python -c pass`, and a Textual
hello world measured the same way.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "app"))

CHILD = textwrap.dedent("""
    import os, sys, time
    import psutil
    started = psutil.Process().create_time()
    from minimind_tui.app.main import create_app
    from minimind_tui.app.widgets.run_monitor import RunMonitor
    root, want_run = sys.argv[1], sys.argv[2] == "1"
    app = create_app(root, poll_interval=0.05)
    marks = {}
    display = app._display

    def first_frame(screen, renderable):  # what a terminal would receive; headless stops right after
        if renderable is not None and not app._batch_count:
            marks.setdefault("frame", time.time() - started)
        return display(screen, renderable)
    app._display = first_frame

    def tabs_built():
        return all(app.query(f"#{t}") and app.query_one(f"#{t}").is_mounted for t in ("dataset-tab", "chat-tab"))

    async def auto_pilot(pilot):  # Textual starts the auto-pilot at Ready (tree mounted, before any frame)
        marks["ready"] = time.time() - started
        while "frame" not in marks or (want_run and app.query_one(RunMonitor).view is None):
            await pilot.pause(0.01)
        marks["run"] = time.time() - started
        while not tabs_built():
            await pilot.pause(0.01)
        marks["tabs"] = time.time() - started
        app.exit()
    app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)
    print(marks["frame"], marks["run"], "torch" in sys.modules, marks["ready"], marks["tabs"])
""")


HELLO = textwrap.dedent("""
    import time
    import psutil
    started = psutil.Process().create_time()
    from textual.app import App
    from textual.widgets import Footer, Static

    class Hello(App):
        def compose(self):
            yield Static("hello")
            yield Footer()

    app = Hello()
    marks = {}
    display = app._display

    def first_frame(screen, renderable):
        if renderable is not None and not app._batch_count:
            marks.setdefault("frame", time.time() - started)
        return display(screen, renderable)
    app._display = first_frame

    async def auto_pilot(pilot):
        while "frame" not in marks:
            await pilot.pause(0.01)
        print(marks["frame"])
        app.exit()
    app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)
""")


def hello_paint() -> float:
    out = subprocess.run([sys.executable, "-c", HELLO], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def fresh(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - t


def app_times(root: Path, with_run: bool, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """First frame, live run on screen (or first frame again without a run), all tabs built; seconds."""
    paints, runs, tabs = [], [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, str(root), "1" if with_run else "0"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[2] == "False", "the dashboard imported torch"
        paints.append(float(out[0]))
        runs.append(float(out[1]))
        tabs.append(float(out[4]))
    return paints, runs, tabs


def replay(root: Path, steps: int) -> tuple[float, int]:
    from canned import make_run

    from minimind_tui.app.run_watch import RunsIndex
    run = make_run(root, "20251101-120000-pretrain", mode="pretrain", steps=steps, total=steps, end="done",
                   ckpt_at=())
    t = time.perf_counter()
    view = RunsIndex(root).view(run)
    return time.perf_counter() - t, len(view.curves) if view is not None and view.curves is not None else 0


def main() -> None:
    repeat = 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        python = statistics.median(fresh([sys.executable, "-c", "pass"]) for _ in range(repeat))
        torch_import = statistics.median(fresh([sys.executable, "-c", "import torch"]) for _ in range(3))
        hello = statistics.median(hello_paint() for _ in range(repeat))
        paint, _, tabs = app_times(root, False, repeat)
        from canned import make_run
        make_run(root, "20251101-100000-sft", steps=2000, total=5000, heartbeat_age=-3600.0 * 24 * 365 * 10,
                 pid=os.getpid())
        paint_run, attach, _ = app_times(root, True, repeat)
        seconds, points = replay(root, 100_000)
    print(f"python -c pass (baseline)           {python:.3f} s")
    print(f"import torch                        {torch_import:.3f} s  ({torch_import / python:.1f}x baseline)")
    print(f"first paint, Textual hello world    {hello:.3f} s")
    print(f"first paint, no runs                {statistics.median(paint):.3f} s  "
          f"({statistics.median(paint) / hello:.2f}x hello world; min {min(paint):.3f}, max {max(paint):.3f})")
    print(f"all four tabs built                 {statistics.median(tabs):.3f} s  "
          f"({statistics.median(tabs) / hello:.2f}x hello world)")
    print(f"first paint, one live run           {statistics.median(paint_run):.3f} s")
    print(f"reattached (live run on screen)     {statistics.median(attach):.3f} s  (max {max(attach):.3f})")
    print(f"replay 100,000 step events          {seconds:.3f} s  ({100_000 / seconds:,.0f} events/s; "
          f"{points:,} steps charted)")


if __name__ == "__main__":
    main()
