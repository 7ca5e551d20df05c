"""Small trainer parts: schedule, flags, lock, heartbeat."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from testkit import wait_until

from minimind_tui.runs import layout
from minimind_tui.train.args import add_arguments, conflicts_on_resume, default_text, given, resolve
from minimind_tui.train.heartbeat import Heartbeat
from minimind_tui.train.lock import RunLocked, TrainerLock
from minimind_tui.train.schedule import learning_rate


def test_cosine_schedule_matches_the_recipe():
    assert learning_rate(0, 100, 1e-3) == pytest.approx(1.1e-3)
    assert learning_rate(50, 100, 1e-3) == pytest.approx(1e-4 + 0.5e-3)
    assert learning_rate(100, 100, 1e-3) == pytest.approx(1e-4)
    assert learning_rate(0, 100, 1e-3, warmup=10) == pytest.approx(1.1e-3 / 10)
    assert learning_rate(10, 100, 1e-3, warmup=10) == learning_rate(10, 100, 1e-3)


def _parse(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return given(p.parse_args(argv))


def test_minimind_flags_in_both_spellings_and_mode_defaults():
    explicit = _parse("--batch-size", "64", "--max_seq_len", "256", "--use_moe", "False", "--ddp")
    assert explicit == {"batch_size": 64, "max_seq_len": 256, "use_moe": False}
    sft = resolve("sft", explicit)
    assert sft["learning_rate"] == 5e-5 and sft["accumulation_steps"] == 1 and sft["init"] is None
    pre = resolve("pretrain", {})
    assert pre["learning_rate"] == 5e-4 and pre["accumulation_steps"] == 8 and pre["init"] == "none"
    assert _parse("--use_moe")["use_moe"] is True and _parse("--use_moe", "1")["use_moe"] is True
    assert resolve("pretrain", {"preset": "demo"})["dim"] == 128


def test_every_model_preset_is_a_train_flag_and_defaults_read_as_the_recipes_write_them():
    from model.config import PRESETS

    for name in PRESETS:
        assert _parse("--preset", name) == {"preset": name}
    with pytest.raises(SystemExit):
        _parse("--preset", "no-such-preset")
    assert [default_text(v) for v in (5e-4, 5e-5, 1.5e-4, 8, 1.0)] == ["5e-4", "5e-5", "1.5e-4", "8", "1.0"]


def test_resume_conflicts_are_listed():
    assert conflicts_on_resume({"batch_size": 4, "device": "cpu"}, {"batch_size": 32, "device": "cuda"}) == \
        ["--batch_size 4 (the run has 32)"]


def test_lock_refuses_a_live_holder_and_clears_a_dead_one(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        import psutil
        (tmp_path / layout.LOCK).write_text(f"{child.pid} {psutil.Process(child.pid).create_time():.3f} "
                                            f"{os.uname().nodename}\n")
        with pytest.raises(RunLocked, match=str(child.pid)):
            TrainerLock(tmp_path).acquire()
    finally:
        child.communicate(b"")
    lock = TrainerLock(tmp_path).acquire()  # holder exited: stale
    assert layout.lock_pid(tmp_path) == os.getpid()
    lock.release()
    assert not (tmp_path / layout.LOCK).exists()


def test_lock_with_a_reused_pid_is_stale(tmp_path):
    # A live pid (our parent's) with another start time: the pid now belongs to another process, so the lock is
    # taken over (a live one would raise RunLocked).
    (tmp_path / layout.LOCK).write_text(f"{os.getppid()} 12345.000 {os.uname().nodename}\n")
    lock = TrainerLock(tmp_path).acquire()
    assert layout.lock_pid(tmp_path) == os.getpid()
    lock.release()


def test_heartbeat_is_touched_from_a_thread(tmp_path):
    hb = Heartbeat(tmp_path, every_s=0.01).start()
    try:
        first = (tmp_path / layout.HEARTBEAT).stat().st_mtime_ns
        wait_until(lambda: (tmp_path / layout.HEARTBEAT).stat().st_mtime_ns != first, 10, "a second touch", poll=0.01)
    finally:
        hb.stop()
    assert layout.heartbeat_age(tmp_path) < layout.HEARTBEAT_STALE_S


def test_missing_tracker_package_is_one_line_and_training_goes_on(monkeypatch):
    from minimind_tui.train import trackers as trackers_module

    real_import = trackers_module.importlib.import_module

    def no_trackers(name, *args, **kwargs):
        if name in ("wandb", "swanlab"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(trackers_module.importlib, "import_module", no_trackers)
    messages = []
    trackers = trackers_module.open_trackers({"use_wandb": True, "use_swanlab": True}, "run", log=messages.append)
    assert trackers.trackers == [] and len(messages) == 2
    assert "wandb package is not installed" in messages[0] and "pip install wandb" in messages[0]
    trackers.log({"loss": 1.0}, 1)  # a no-op, not an error
