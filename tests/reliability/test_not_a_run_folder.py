"""Round two, item 5: `train --run_dir DIR` on a folder that is not empty and not a run is refused, naming it,
and nothing in it is touched.

Before: the trainer took any folder: it wrote its config.json over a Hugging Face export's, and deleted
checkpoints/step_* folders without COMPLETE (someone's copied checkpoints) as "interrupted saves".
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from reliability_kit import TINY, cache_env, one_line_error
from testkit import train_here

from minimind_tui.cli import main as cli_main
from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout
from minimind_tui.runs.launcher import LAUNCHER_LOG, LAUNCHER_PID


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus):
    """A tiny finished pretraining run (runs/r, checkpoints at steps 1 and 2) exported as a Hugging Face folder."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("foreign_project")
    try:
        assert train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                          "--save_interval", "1", "--run_dir", "runs/r", env={**cache_env(tmp_path_factory),
                                                                               "MINIMIND_TUI_STOP_AT_STEP": "2"},
                          monkeypatch=mp) == 0
        newest = layout.complete_checkpoints(root / "runs" / "r")[-1]
        assert cli_main(["export", str(newest / layout.MODEL_FILE), "--out", str(root / "hf"),
                         "--tokenizer", str(demo_tokenizer_dir())]) == 0
    finally:
        mp.undo()
    return root


def hf_export(root: Path) -> Path:
    return root / "hf"


def copied_checkpoints(root: Path) -> Path:
    """Someone's checkpoints copied without the run's config.json and metrics.jsonl, one of them unfinished."""
    folder = root / "theirs"
    shutil.copytree(root / "runs" / "r" / layout.CHECKPOINTS, folder / layout.CHECKPOINTS)
    unfinished = folder / layout.CHECKPOINTS / "step_00000003"
    unfinished.mkdir()
    (unfinished / layout.MODEL_FILE).write_bytes(b"their half-copied weights")
    return folder


def data_folder(root: Path) -> Path:
    folder = root / "dataset"
    folder.mkdir()
    (folder / "notes.md").write_text("my data")
    return folder


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with its content hash (files) and modification time."""
    out = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (digest, path.stat().st_mtime_ns)
    return out


@pytest.mark.parametrize("make", [hf_export, copied_checkpoints, data_folder])
def test_a_folder_that_is_not_a_run_is_refused_untouched(finished, tmp_path, corpus, monkeypatch, capsys, make,
                                                         measured):
    root = tmp_path / "p"
    shutil.copytree(finished, root)
    folder = make(root)
    before = snapshot(folder)
    code = train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--run_dir", str(folder),
                      "--tokenizer", str(demo_tokenizer_dir()), monkeypatch=monkeypatch)
    line = one_line_error(capsys, code)
    assert f"{folder}: not empty and not a run folder" in line and "--run_dir" in line
    assert snapshot(folder) == before
    measured.setdefault("r2 #5 not a run folder", []).append(f"{make.__name__} ({len(before)} paths): exit 2, "
                                                             f"0 paths changed")


@pytest.mark.slow
def test_the_folder_the_dashboard_made_is_still_taken(tmp_path, corpus, monkeypatch):
    """What the launcher puts into a new run folder before the trainer starts is not a reason to refuse it."""
    folder = tmp_path / "runs" / "20260101-000000-pretrain"
    folder.mkdir(parents=True)
    (folder / LAUNCHER_LOG).write_text("")
    (folder / LAUNCHER_PID).write_text(f"{os.getpid()} 0.0 host\n")
    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--run_dir", str(folder), "--tokenizer", str(demo_tokenizer_dir()),
                      env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch)
    assert code == 0 and layout.complete_checkpoints(folder)
