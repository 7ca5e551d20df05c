"""Checkpoints written in the background while training goes on, and saved every few minutes by default."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all
from minimind_tui.train import checkpointing, loop
from minimind_tui.train.args import DEFAULT_SAVE_EVERY_MIN, resolve

CPU = [*TINY, "--device", "cpu", "--batch_size", "8", "--accumulation_steps", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_demo_corpus(tmp_path_factory.mktemp("data"))


def events(run: Path, kind: str) -> list[dict]:
    return [e for e in read_all(run / layout.METRICS) if e["event"] == kind] if (run / layout.METRICS).exists() else []


@pytest.mark.slow
def test_training_goes_on_while_a_checkpoint_is_written(tmp_path, data, monkeypatch):
    """The write of step 2's checkpoint holds until step 4 is logged: only a save off the training thread
    lets that happen. What it writes is still step 2's state (a snapshot, not the live tensors)."""
    real = checkpointing.save_checkpoint
    overlapped = []

    def slow_save(run_dir, step, *a, **kw):
        if step == 2 and Path(run_dir).name == "bg":
            deadline = time.monotonic() + 60
            while not any(e["step"] >= 4 for e in events(run_dir, "step")) and time.monotonic() < deadline:
                time.sleep(0.01)
            overlapped.append(any(e["step"] >= 4 for e in events(run_dir, "step")))
        return real(run_dir, step, *a, **kw)
    monkeypatch.setattr(checkpointing, "save_checkpoint", slow_save)
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--save_interval", "2",
                      "--keep_last", "10", "--run_dir", "bg", monkeypatch=monkeypatch) == 0
    assert overlapped == [True]
    run = tmp_path / "bg"
    assert [e["step"] for e in events(run, "ckpt")] == [2, 4, 6, 8, 10, 12]
    assert events(run, "end")[-1]["status"] == "done" and read_all(run / layout.METRICS)[-1]["event"] == "end"
    assert all(e["blocked_s"] >= 0 for e in events(run, "ckpt"))
    # Step 2's checkpoint equals the one of a run that stopped after step 2: weights and optimizer moments.
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--run_dir", "two",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "2"}, monkeypatch=monkeypatch) == 0
    ours = checkpointing.load_checkpoint(layout.checkpoint_dir(run, 2))
    ref = checkpointing.load_checkpoint(layout.checkpoint_dir(tmp_path / "two", 2))
    assert all(torch.equal(ours.weights[k], ref.weights[k]) for k in ref.weights)
    for i, moments in ref.state["optimizer"]["state"].items():
        assert all(torch.equal(moments[k], ours.state["optimizer"]["state"][i][k]) for k in moments)


def test_a_crash_waits_for_the_write_in_flight(tmp_path, data, monkeypatch):
    """A failure elsewhere lets the background save finish (COMPLETE written) before `end` is recorded."""
    real = checkpointing.save_checkpoint

    def slow_save(*a, **kw):
        time.sleep(0.5)
        return real(*a, **kw)
    real_step = loop.Trainer.train_step

    def crash_at_3(self, *a, **kw):
        if self.step == 2:
            raise RuntimeError("boom")
        return real_step(self, *a, **kw)
    monkeypatch.setattr(checkpointing, "save_checkpoint", slow_save)
    monkeypatch.setattr(loop.Trainer, "train_step", crash_at_3)
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--save_interval", "2",
                      "--run_dir", "r", monkeypatch=monkeypatch) == 1
    run = tmp_path / "r"
    assert [p.name for p in layout.complete_checkpoints(run)] == ["step_00000002"]
    kinds = [e["event"] for e in read_all(run / layout.METRICS)]
    assert kinds.index("ckpt") < kinds.index("end") == len(kinds) - 1


def test_saves_every_few_minutes_by_default(tmp_path, data, monkeypatch):
    """A clock that advances a minute per step: with --save_every_min 2.5, a save every third step."""
    monkeypatch.setattr(loop.Trainer, "_now", lambda self: self.step * 60.0)
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--save_every_min", "2.5",
                      "--run_dir", "r", monkeypatch=monkeypatch) == 0
    assert [e["step"] for e in events(tmp_path / "r", "ckpt")] == [3, 6, 9, 12]


def test_save_interval_replaces_the_time_based_default():
    assert resolve("pretrain", {})["save_every_min"] == DEFAULT_SAVE_EVERY_MIN
    assert resolve("pretrain", {})["save_interval"] is None
    steps_only = resolve("pretrain", {"save_interval": 50})
    assert (steps_only["save_interval"], steps_only["save_every_min"]) == (50, None)
    both = resolve("pretrain", {"save_interval": 50, "save_every_min": 10.0})
    assert (both["save_interval"], both["save_every_min"]) == (50, 10.0)
    # A run saved before the time-based default keeps its step interval on resume...
    assert resolve("pretrain", {}, base={"save_interval": 100})["save_every_min"] is None
    # ...and a --save_interval given on resume replaces the run's time-based saving.
    assert resolve("pretrain", {"save_interval": 7}, base={"save_every_min": 5.0})["save_every_min"] is None
