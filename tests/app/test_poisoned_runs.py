"""Poisoned run folders (issue 15 #12): each is read in isolation, shows as "unreadable: reason" and never stops
the Runs tab, the live monitor or the other runs; a poller that raises says so and starts again."""
from __future__ import annotations

import os
import shutil

import pytest
from canned import T0, make_run
from testkit import Posted, wait_for

from minimind_tui.app.app import RunsUpdated
from minimind_tui.app.widgets.run_monitor import RunMonitor
from minimind_tui.runs import events, layout

LIVE = "20251101-100000-sft"


def poison(project) -> dict[str, str]:
    """Four poisoned runs next to nothing else; run id -> what its row must say."""
    bad_config = make_run(project, "20251101-090000-sft", end="done")
    (bad_config / layout.CONFIG).write_text("[1,2]")
    bad_event = make_run(project, "20251101-091000-sft", end="done")
    with open(bad_event / layout.METRICS, "ab") as f:
        f.write(b'{"event": "step", "time": 1, "step": "abc", "loss": 2.0}\n')
    fifo = make_run(project, "20251101-092000-sft", end="done")
    (fifo / layout.METRICS).unlink()
    os.mkfifo(fifo / layout.METRICS)  # opening it for reading would wait for a writer forever
    not_json = make_run(project, "20251101-093000-sft", end="done")
    (not_json / layout.CONFIG).write_text("{")
    return {"20251101-090000-sft": "config.json holds a list, not an object",
            "20251101-091000-sft": "metrics.jsonl: a 'step' event has step = 'abc', not a number",
            "20251101-092000-sft": "metrics.jsonl is a FIFO, not a regular file",
            "20251101-093000-sft": "config.json: not valid JSON"}


def last_runs(seen: Posted) -> dict:
    """The run summaries of the newest RunsUpdated the app posted, by run id."""
    updates = seen.of(RunsUpdated)
    return {s.run_id: s for s in updates[-1].summaries} if updates else {}


@pytest.mark.timeout(60)
async def test_poisoned_folders_are_unreadable_rows_and_the_live_run_keeps_streaming(make_app, project):
    expected = poison(project)
    run = make_run(project, LIVE, steps=30, heartbeat_age=1.0, pid=os.getpid())
    seen = Posted()
    app = make_app()
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: LIVE in last_runs(seen) and len(last_runs(seen)) == 5, "the runs listed")
        rows = last_runs(seen)
        assert (rows[LIVE].status, rows[LIVE].step) == ("live", 30)
        for run_id, reason in expected.items():
            assert (rows[run_id].status, rows[run_id].reason[:len(reason)]) == ("unreadable", reason)
        # Each bad folder is announced once with its whole reason (its row has no room for it).
        await wait_for(pilot, lambda: len(seen.notices("Run folder unreadable")) == 4, "the notices")
        assert sorted(n.split(": ", 1)[0] for n in seen.notices("Run folder unreadable")) == sorted(expected)
        # The live run's monitor still follows new events.
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view is not None, "reattach")
        with open(run / layout.METRICS, "ab") as f:
            f.write(events.encode("step", now=T0, step=31, total=100, epoch=0, loss=1.5, lr=1e-5))
        app.refresh_runs()
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view.summary.step == 31, "the new step")
        assert last_runs(seen)[LIVE].step == 31
        assert len(seen.notices("Run folder unreadable")) == 4  # not repeated on every poll
        # The table shows the reason in the row (where the dataset goes).
        table = app.query_one("#runs-table")
        row = table.get_row("20251101-090000-sft")
        cells = [str(c) for c in row]
        assert cells[1:3] == ["unreadable", "sft"]
        assert cells[table.get_column_index("dataset")] == "config.json holds a list, not an object"


async def test_selecting_an_unreadable_run_shows_why_in_the_monitor(make_app, project):
    (project / "runs" / "20251101-090000-sft").mkdir(parents=True)
    (project / "runs" / "20251101-090000-sft" / layout.CONFIG).write_text('{"mode": ["sft"]}')
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view is not None, "the monitor")
        notes = str(app.query_one("#monitor-notes").render())
        assert "config.json has mode = [\"sft\"], not text" in notes
        assert app.query_one("#stop").disabled and app.query_one("#resume").disabled


async def test_a_run_folder_deleted_while_polled_drops_out(make_app, project):
    make_run(project, "20251101-090000-sft", end="done")
    doomed = make_run(project, LIVE, steps=30, heartbeat_age=1.0, pid=os.getpid())
    delete_now = []

    def clock():  # read by the poller after it listed the folders and before it reads them
        if delete_now and doomed.exists():
            shutil.rmtree(doomed)
        return T0

    seen = Posted()
    app = make_app(clock=clock)
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view is not None, "reattach to the live run")
        delete_now.append(True)
        app.refresh_runs()
        await wait_for(pilot, lambda: list(last_runs(seen)) == ["20251101-090000-sft"], "the deleted run gone")
        # Never shown as something it was not (a run that "exited before starting") on its way out.
        assert {s.status for m in seen.of(RunsUpdated) for s in m.summaries if s.run_id == LIVE} == {"live"}
        assert not seen.notices("Reading the runs failed")
        # The poller is still alive: a new run shows up.
        make_run(project, "20251101-110000-sft", end="done")
        app.refresh_runs()
        await wait_for(pilot, lambda: "20251101-110000-sft" in last_runs(seen), "a new run listed")


async def test_a_poller_that_raises_says_so_and_starts_again(make_app, project):
    make_run(project, "20251101-090000-sft", end="done")
    failures = [RuntimeError("clock broke")] * 3  # the same error three times: one notice

    def clock():
        if failures:
            raise failures.pop()
        return T0

    seen = Posted()
    app = make_app(clock=clock, restart_delay=0.05)
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: last_runs(seen), "the poller back after its failures")
        assert seen.notices("Reading the runs failed") == ["RuntimeError: clock broke\nRetrying every few seconds."]
        assert last_runs(seen)["20251101-090000-sft"].status == "done"


def test_the_dataset_tabs_throughput_skips_poisoned_runs(project):
    from testkit import finishes

    from minimind_tui.app.widgets.dataset_stats import measured_throughput

    make_run(project, "20251101-080000-sft", end="done")  # every canned step logs 12,345 tokens/s
    with open(make_run(project, "20251101-090000-sft", end="done") / layout.METRICS, "ab") as f:
        f.write(b'{"event": "step", "time": 1, "step": 41, "tokens_per_s": "fast"}\n')
    fifo = make_run(project, "20251101-100000-sft", end="done") / layout.METRICS
    fifo.unlink()
    os.mkfifo(fifo)
    for age, run in enumerate(sorted((project / "runs").iterdir(), reverse=True)):
        os.utime(run, (T0 - age, T0 - age))  # newest first: the FIFO, then the run ending in a string
    # The FIFO is skipped without blocking; in the next run the string is passed over for the step before it.
    assert finishes(lambda: measured_throughput(project)) == (12_345.0, "20251101-090000-sft")
