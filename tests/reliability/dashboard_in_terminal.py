"""Run the real dashboard in the terminal it was given, and launch a tiny training run from its Train form
(as a user would, by keys), then keep running until the terminal goes away. Used by test_ssh_drop.py:
python dashboard_in_terminal.py ROOT DATA_PATH"""
from __future__ import annotations

import sys
from pathlib import Path

from textual.widgets import Input

from minimind_tui.app.main import create_app
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor

root, data = Path(sys.argv[1]), sys.argv[2]
app = create_app(root, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(), poll_interval=0.2,
                 gpu_interval=None)


async def launch_a_run(pilot) -> None:
    form = app.query_one(TrainForm)
    for _ in range(1500):
        if form.scans_done:
            break
        await pilot.pause(0.02)
    form.query_one("#preset").value = "demo"
    await pilot.pause()
    tiny = "--dim 32 --n_layers 1 --n_heads 4 --n_kv_heads 2 --epochs 100000 --save_interval 1000000"
    for field, value in [("data_path", data), ("batch_size", "4"), ("max_seq_len", "48"), ("device", "cpu"),
                         ("extra", tiny)]:
        form.query_one(f"#{field}", Input).value = value
    await pilot.pause()
    await pilot.press("ctrl+l")


app.run(auto_pilot=launch_a_run)
