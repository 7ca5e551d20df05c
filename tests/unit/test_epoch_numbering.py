"""`epoch` in metrics.jsonl counts from 1, as the dashboard and the log line say; runs written by schema 1
(which counted from 0) read the same."""
from __future__ import annotations

from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.app.widgets.run_monitor import progress_text
from minimind_tui.runs import layout
from minimind_tui.runs.events import encode
from minimind_tui.runs.reader import read_all
from minimind_tui.runs.summary import summarize


def test_the_trainer_writes_epochs_from_one(tmp_path, monkeypatch):
    data = write_demo_corpus(tmp_path)
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "32",
                      "--accumulation_steps", "1", "--epochs", "2", "--run_dir", "r", monkeypatch=monkeypatch) == 0
    steps = [e for e in read_all(tmp_path / "r" / layout.METRICS) if e["event"] == "step"]
    assert [e["epoch"] for e in steps] == [1, 1, 1, 2, 2, 2]
    assert "epoch 2 step 6/6" in (tmp_path / "r" / layout.LOG).read_text()
    summary = summarize(tmp_path / "r")
    assert summary.epoch == 2 and "epoch 2/2" in progress_text(summary).plain


def test_a_schema_1_run_counted_from_zero_and_reads_the_same(tmp_path):
    for name, schema, epoch in (("old", 1, 0), ("new", 2, 1)):
        run = tmp_path / name
        run.mkdir()
        (run / layout.METRICS).write_bytes(encode("start", now=1.0, schema=schema, mode="sft", total=10)
                                           + encode("step", now=2.0, step=3, total=10, epoch=epoch, loss=1.0))
        assert summarize(run).epoch == 1
