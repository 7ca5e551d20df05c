"""train/run_dir.py: which folder --run_dir may start a new run in, and a disk that refuses the first writes."""
from __future__ import annotations

import errno
import json

import pytest

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.train.run_dir import RunDirUnwritable, check_new_run_dir, start_up_writes

SETTINGS = {"dim": 32, "n_layers": 1, "n_heads": 4, "n_kv_heads": 2, "use_moe": False, "keep_last": 3,
            "tokenizer": None}


def run_config(folder, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / layout.CONFIG).write_text(json.dumps({"mode": "pretrain", "settings": {"dim": 32}, **extra}))


@pytest.mark.parametrize("contents", [
    [],                                                                  # created empty, by the user or mkdir
    ["launcher.log", "launcher.pid", ".launcher.pid.12.0badf00d.tmp"],   # the dashboard's, just launched
    ["trainer.lock", "train.log", "heartbeat", ".trainer.lock.stale-7"],  # a trainer that died while starting
])
def test_new_and_starting_folders_are_taken(tmp_path, contents):
    check_new_run_dir(tmp_path / "missing")
    for name in contents:
        (tmp_path / name).write_text("")
    check_new_run_dir(tmp_path)


def test_a_run_that_never_saved_is_taken_and_one_with_checkpoints_is_refused(tmp_path):
    run_config(tmp_path)
    (tmp_path / layout.METRICS).write_text("")
    check_new_run_dir(tmp_path)  # it failed before its first save: starting again there loses nothing
    folder = layout.checkpoint_dir(tmp_path, 2)
    folder.mkdir(parents=True)
    (folder / layout.COMPLETE).write_text("ok\n")
    with pytest.raises(UserError, match="already holds a run; continue it with --resume"):
        check_new_run_dir(tmp_path)


@pytest.mark.parametrize("make", [
    lambda d: (d / "config.json").write_text('{"architectures": ["MiniMindForCausalLM"], "model_type": "minimind"}'),
    lambda d: (d / "config.json").write_text("[1, 2]"),
    lambda d: layout.checkpoint_dir(d, 2).mkdir(parents=True),
    lambda d: (d / "pretrain.jsonl").write_text("{}\n"),
], ids=["hf-config", "not-an-object", "checkpoints-only", "data"])
def test_folders_that_are_not_runs_are_refused_by_name(tmp_path, make):
    folder = tmp_path / "x"
    folder.mkdir()
    make(folder)
    with pytest.raises(UserError, match=f"^{folder}: not empty and not a run folder"):
        check_new_run_dir(folder)


def test_a_refused_first_write_is_one_line_and_takes_back_a_fresh_folder(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RunDirUnwritable) as caught:
        with start_up_writes(run, SETTINGS):
            run.mkdir()
            (run / layout.LOG).write_text("")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(caught.value).startswith(f"{run}: No space left on device, ") and "free" in str(caught.value)
    assert "needs about" in str(caught.value) and "--keep_last 3" in str(caught.value)
    assert not run.exists()


def test_a_folder_that_held_something_is_kept_and_other_errors_pass(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "launcher.log").write_text("the dashboard's")
    undone = []
    with pytest.raises(RunDirUnwritable, match="Read-only file system; .*make it writable"):
        with start_up_writes(run, SETTINGS, undo=lambda: undone.append(True)):
            raise OSError(errno.EROFS, "Read-only file system")
    assert undone == [True] and (run / "launcher.log").read_text() == "the dashboard's"
    with pytest.raises(IsADirectoryError):  # not the disk refusing: a bug, shown as such
        with start_up_writes(run, SETTINGS):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
