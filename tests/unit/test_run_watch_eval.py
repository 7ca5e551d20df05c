"""The validation points a chart draws with the training loss: every `eval` event of the followed run, by step."""
from __future__ import annotations

from minimind_tui.app.run_watch import RunsIndex
from minimind_tui.runs import layout
from minimind_tui.runs.events import encode


def test_a_view_carries_the_eval_points_and_a_resume_replaces_the_replayed_ones(tmp_path):
    run = layout.create_run_dir(tmp_path, "pretrain")
    metrics = run / layout.METRICS
    lines = [encode("start", now=1.0, mode="pretrain", total=30), encode("step", now=2.0, step=10, loss=3.0),
             encode("eval", now=3.0, step=10, loss=3.5), encode("eval", now=4.0, step=20, loss=3.1),
             encode("eval", now=4.5, step=25, loss=3.0), encode("end", now=5.0, status="stopped", step=25)]
    metrics.write_bytes(b"".join(lines))
    index = RunsIndex(tmp_path, clock=lambda: 10.0)
    assert index.view(run).eval_points == ((10, 3.5), (20, 3.1), (25, 3.0))
    # Resumed from step 10: what was evaluated after it goes (step 25 never comes again: another interval), step
    # 20 is evaluated again.
    with open(metrics, "ab") as f:
        f.write(encode("start", now=6.0, mode="pretrain", total=30, resumed_from=10))
        f.write(encode("eval", now=7.0, step=20, loss=2.9))
        f.write(encode("eval", now=8.0, step=30, loss=2.7))
    assert index.view(run).eval_points == ((10, 3.5), (20, 2.9), (30, 2.7))
