"""End to end: the real app launches the real demo trainer on CPU through the real launcher, sees loss records
and a checkpoint arrive, stops it gracefully from the UI, and resumes it."""
from __future__ import annotations

import pytest
from testkit import monitor_summary, wait_for
from textual.widgets import Input, TabbedContent

from minimind_tui.app.main import create_app
from minimind_tui.app.widgets.run_monitor import RunMonitor
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor
from minimind_tui.runs.control import stop_run
from minimind_tui.runs.launcher import ProcessLauncher

pytestmark = pytest.mark.slow
ROUNDS = 15_000  # x 20 ms: generous for a loaded 2-core machine; the test ends as soon as each step is seen


async def test_launch_watch_stop_resume_with_the_real_trainer(tmp_path):
    demo = pytest.importorskip("minimind_tui.demo")
    root = tmp_path / "proj"
    root.mkdir()
    demo.ensure_demo_data(root)
    launcher = ProcessLauncher()
    app = create_app(root, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(), launcher=launcher,
                     poll_interval=0.2, gpu_interval=None, stop_timeout=120)
    run_dir = None
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            form = app.query_one(TrainForm)
            await wait_for(pilot, lambda: form.scans_done, "scan")
            form.query_one("#preset").value = "demo"
            await pilot.pause()
            for field, value in [("data_path", "dataset/demo_pretrain.jsonl"), ("batch_size", "4"),
                                 ("max_seq_len", "32"), ("device", "cpu"), ("extra", "--save_interval 3")]:
                form.query_one(f"#{field}", Input).value = value
            await pilot.pause()
            await pilot.press("ctrl+l")
            await wait_for(pilot, lambda: monitor_summary(app) is not None and app.selected_run is not None, "launched")
            run_dir = app.selected_run
            assert app.query_one(TabbedContent).active == "runs"

            await wait_for(pilot, lambda: monitor_summary(app).last_ckpt_step is not None, "a checkpoint", ROUNDS)
            s, curves = monitor_summary(app), app.query_one(RunMonitor).view.curves
            assert s.status == "live" and s.step >= 3 and len(curves) >= 3 and s.mode == "pretrain"
            assert all(x == x for x in curves.values("loss"))  # every step logged a loss
            assert (run_dir / "checkpoints").is_dir()

            await pilot.press("s")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: monitor_summary(app).status == "stopped", "graceful stop", ROUNDS)
            stopped = monitor_summary(app)
            assert stopped.can_resume

            await pilot.press("r")
            await wait_for(pilot, lambda: monitor_summary(app).is_live
                           and (monitor_summary(app).step or 0) > stopped.step, "resumed run stepping", ROUNDS)
            assert monitor_summary(app).run_id == stopped.run_id  # same run directory, continued
    finally:
        if run_dir is not None:
            stop_run(run_dir, timeout=60)
