"""Snapshots of each dashboard tab this module owns (Train, Runs, GPU strip states, help) at 80x24 and 120x40.
Everything shown is injected or canned: run names, fixed clock, fake GPU and host readings; no temp paths.
Regenerate deliberately: pytest tests/app/test_app_snapshots.py --snapshot-update, then read the diff report."""
from __future__ import annotations

import os

import pytest
from canned import T0, make_run
from chartkit import settle
from testkit import wait_for
from textual.widgets import Input

from minimind_tui.app.widgets.run_monitor import RunMonitor
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.gpu.fake import FakeGpu, FakeNvml
from minimind_tui.gpu.nvml import NvmlMonitor


def canned_runs(project):
    make_run(project, "20251101-080000-pretrain", mode="pretrain", steps=100, total=100, end="done",
             dataset="dataset/pretrain_hq.jsonl", ckpt_at=(50, 100), now=T0 - 7200)
    make_run(project, "20251101-090000-sft", steps=60, end="stopped", reason="SIGINT at step 60", ckpt_at=(60,),
             now=T0 - 3600)
    make_run(project, "20251101-100000-sft", steps=42, total=100, heartbeat_age=1.0, pid=os.getpid(),
             ckpt_at=(20, 40), log_lines=12)


async def settle_train(pilot):
    form = pilot.app.query_one(TrainForm)
    await wait_for(pilot, lambda: pilot.app.gpu_reading is not None and form.scans_done, "scan")
    form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
    await wait_for(pilot, lambda: "lines" in str(form.query_one("#data_info").render()), "line count")
    pilot.app.set_focus(None)
    await pilot.pause()


async def settle_runs(pilot):
    await wait_for(pilot, lambda: pilot.app.query_one(RunMonitor).view is not None, "monitor")
    await settle(pilot)  # the charts, drawn after their own layout pass


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_train_tab(snap_compare, make_app, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=settle_train)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_runs_tab_reattached_to_a_live_run(snap_compare, make_app, project, size):
    canned_runs(project)
    assert snap_compare(make_app(), terminal_size=size, run_before=settle_runs)


def test_runs_tab_killed_run_offers_resume(snap_compare, make_app, project):
    make_run(project, "20251101-100000-sft", steps=25, heartbeat_age=900.0, pid=None, ckpt_at=(20,))

    async def run_before(pilot):
        await pilot.press("2")
        await settle_runs(pilot)
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_gpu_strip_without_a_driver(snap_compare, make_app):
    app = make_app(gpu=NvmlMonitor(nvml=FakeNvml(mode="driver_not_loaded")))
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_train)


def test_gpu_strip_with_one_gpu_lost_and_counters_unsupported(snap_compare, make_app):
    nvml = FakeNvml([FakeGpu(processes=[(os.getpid(), 3 << 30)]), FakeGpu(), FakeGpu()], lost={2},
                    unsupported={"power"})
    app = make_app(gpu=NvmlMonitor(nvml=nvml))
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_train)


def test_help_screen(snap_compare, make_app):
    async def run_before(pilot):
        await settle_train(pilot)
        await pilot.press("?")
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)
