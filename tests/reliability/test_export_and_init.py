"""Round two, items 1 and 2: the exported weights share nothing with the checkpoint they come from, and --init
checks a checkpoint's checksums as resume does.

Before: out/<name>.pth was a hard link to checkpoints/step_N/model.pth, so MiniMind's own torch.save to that
path (or cp, scp, curl -o) rewrote the checkpoint as well; its checksum then failed, resume fell back an
interval, and `--init` took the rewritten (all-zero) weights without a word and trained a uniform model.
"""
from __future__ import annotations

import pytest
import torch
from reliability_kit import TINY, cache_env, one_line_error
from testkit import events, of_kind, train_here

from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout
from minimind_tui.train import checkpointing
from model.checkpoint import load_state_dict


@pytest.fixture(scope="module")
def project(tmp_path_factory, corpus):
    """A tiny pretraining run stopped at step 4: checkpoints at steps 2 and 4, step 4 exported to out/."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("export_project")
    try:
        code = train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                          "--accumulation_steps", "1", "--save_interval", "2", "--run_dir", "runs/r",
                          env={**cache_env(tmp_path_factory), "MINIMIND_TUI_STOP_AT_STEP": "4"}, monkeypatch=mp)
    finally:
        mp.undo()
    assert code == 0
    assert [p.name for p in layout.complete_checkpoints(root / "runs" / "r")] == ["step_00000002", "step_00000004"]
    return root


def zero_in_place(path) -> None:
    """What MiniMind's own script does to out/<name>.pth: torch.save of (here all-zero) weights to that path,
    which truncates and rewrites the file it finds there, in place."""
    inode = path.stat().st_ino
    torch.save({k: torch.zeros_like(v) for k, v in load_state_dict(path).items()}, path)
    assert path.stat().st_ino == inode  # really the same file, not a replacement


def test_writing_into_the_exported_weights_leaves_the_checkpoint_intact(copy, measured):
    run = copy / "runs" / "r"
    newest = layout.complete_checkpoints(run)[-1]
    exported = copy / "out" / "pretrain_32.pth"
    assert exported.read_bytes() == (newest / layout.MODEL_FILE).read_bytes()
    assert exported.stat().st_ino != (newest / layout.MODEL_FILE).stat().st_ino
    assert (newest / layout.MODEL_FILE).stat().st_nlink == 1
    zero_in_place(exported)
    checkpointing.verify(newest)  # raises on a checksum mismatch
    notes: list[str] = []
    assert checkpointing.load_latest(run, log=notes.append).path == newest and notes == []
    measured["r2 #1 export"] = ("out/pretrain_32.pth rewritten in place by torch.save (all zeros): the step-4 "
                                "checkpoint still verifies, resume takes step 4 with 0 fallbacks (before: a hard "
                                "link, nlink 2; checksum mismatch, resume fell back to step 2)")


@pytest.mark.parametrize("named", ["folder", "model.pth"])
def test_init_from_a_checkpoint_that_fails_its_checksums_is_refused(copy, corpus, monkeypatch, capsys, named):
    newest = layout.complete_checkpoints(copy / "runs" / "r")[-1]
    zero_in_place(newest / layout.MODEL_FILE)  # what the hard link let MiniMind's script do
    target = newest if named == "folder" else newest / layout.MODEL_FILE
    code = train_here(copy, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--tokenizer", str(demo_tokenizer_dir()), "--init", str(target), "--run_dir", "runs/new",
                      monkeypatch=monkeypatch)
    line = one_line_error(capsys, code)
    assert f"{newest / layout.MODEL_FILE}: checksum mismatch" in line
    assert not layout.complete_checkpoints(copy / "runs" / "new")  # nothing trained


def test_init_from_a_run_falls_back_past_a_checkpoint_that_fails_as_resume_does(copy, corpus, monkeypatch, capsys,
                                                                              measured):
    run = copy / "runs" / "r"
    previous, newest = layout.complete_checkpoints(run)
    zero_in_place(newest / layout.MODEL_FILE)
    code = train_here(copy, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--tokenizer", str(demo_tokenizer_dir()), "--init", str(run),
                      "--run_dir", "runs/new", env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch)
    out = capsys.readouterr()
    assert code == 0, out.err
    said = f"checkpoint unusable, falling back to the previous one: {newest / layout.MODEL_FILE}: checksum mismatch"
    assert said in out.out  # train.log
    assert f"init: loaded {previous / layout.MODEL_FILE}" in out.out
    warnings = [e["message"] for e in of_kind(copy / "runs" / "new", "log") if e.get("level") == "warning"]
    assert any(said in w for w in warnings)  # the dashboard shows it too
    assert [e["event"] for e in events(copy / "runs" / "new")][-1] == "end"
    measured["r2 #2 --init"] = ("newest model.pth rewritten with zeros: --init of that checkpoint (folder or "
                                "model.pth) refused, exit 2, one line naming it; --init of the run fell back to "
                                "step 2 with a warning (train.log and a log event) and trained from it")
