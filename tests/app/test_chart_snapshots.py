"""Snapshots of the Runs tab's charts at 80x24 and 160x50: one run resumed from an earlier checkpoint (its
replayed steps drawn in step order, the resume marked), and two runs compared. Canned curves (canned_curves.py),
run names only, a fixed clock and fake GPU readings. Regenerate deliberately:
pytest tests/app/test_chart_snapshots.py --snapshot-update, then read the diff report."""
from __future__ import annotations

import pytest
from chartkit import OTHER, RESUMED, open_run, settle, two_runs
from testkit import wait_for

from minimind_tui.app.widgets.compare_view import CompareView

SIZES = [(80, 24), (160, 50)]


class TestRunCharts:
    @pytest.mark.parametrize("size", SIZES)
    def test_a_run_resumed_from_an_earlier_checkpoint(self, snap_compare, make_app, project, size):
        two_runs(project)

        async def run_before(pilot):
            await open_run(pilot, RESUMED)
            await settle(pilot, "#monitor-grid")
        assert snap_compare(make_app(), terminal_size=size, run_before=run_before)

    @pytest.mark.parametrize("size", SIZES)
    def test_two_runs_compared(self, snap_compare, make_app, project, size):
        two_runs(project)

        async def run_before(pilot):
            await open_run(pilot, OTHER)
            await pilot.press("m", "down", "m", "c")
            view = pilot.app.query_one(CompareView)
            await wait_for(pilot, lambda: view.display and len(view.compared) == 2, "comparison")
            await settle(pilot, "#compare-grid")
        assert snap_compare(make_app(), terminal_size=size, run_before=run_before)

    def test_log_scale_by_tokens(self, snap_compare, make_app, project):
        two_runs(project)

        async def run_before(pilot):
            await open_run(pilot, RESUMED)
            await pilot.press("l", "x")
            await settle(pilot, "#monitor-grid")
        assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
