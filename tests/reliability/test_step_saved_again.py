"""Round two, item 3: a step that already has a complete folder (from another timeline) is saved again, and
the new folder replaces the old one whole.

Before: a save found step_N/COMPLETE and returned at once. After resuming from an older checkpoint (the
newest failed its checksums, or `--resume` named an older step) the re-trained steps printed "saved" but kept
the old folders, a corrupt model.pth included, so every later resume fell back past it again.
"""
from __future__ import annotations

import shutil

import pytest
from reliability_kit import train_stopped_run
from testkit import of_kind, train_here

from minimind_tui.runs import layout
from minimind_tui.train import checkpointing


@pytest.fixture(scope="module")
def project(tmp_path_factory, corpus):
    """A tiny pretraining run stopped at step 6 with checkpoints at steps 2, 4 and 6."""
    root = train_stopped_run(tmp_path_factory, corpus, "timeline_project")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("how", ["corrupt newest", "resume an older step"])
def test_a_step_trained_again_replaces_its_old_folder(project, tmp_path, monkeypatch, capsys, how, measured):
    root = tmp_path / "p"
    shutil.copytree(project, root)
    run = root / "runs" / "r"
    step4, step6 = layout.checkpoint_dir(run, 4), layout.checkpoint_dir(run, 6)
    old_meta = {s: layout.read_json(layout.checkpoint_dir(run, s) / layout.META_FILE) for s in (4, 6)}
    if how == "corrupt newest":
        model = step6 / layout.MODEL_FILE
        model.write_bytes(bytes(model.stat().st_size))  # same size, all zeros
        target, again = run, 6
    else:
        target, again = layout.checkpoint_dir(run, 2), 4
    code = train_here(root, "pretrain", "--resume", str(target), env={"MINIMIND_TUI_STOP_AT_STEP": str(again)},
                      monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert ("falling back" in out) == (how == "corrupt newest")
    folder = layout.checkpoint_dir(run, again)
    assert f"saved {folder}" in out and again in [e["step"] for e in of_kind(run, "ckpt")]
    meta = checkpointing.verify(folder)  # the re-saved folder passes its checksums
    assert meta["saved_at"] > old_meta[again]["saved_at"]  # a new folder, not the old one kept
    assert not [p for p in (run / layout.CHECKPOINTS).iterdir() if p.name.startswith(".")]
    if how == "corrupt newest":
        notes: list[str] = []
        assert checkpointing.load_latest(run, log=notes.append).path == step6 and notes == []
    else:  # only the step saved again is replaced: step 6 of the first timeline is left as it was
        assert layout.read_json(step6 / layout.META_FILE)["saved_at"] == old_meta[6]["saved_at"]
        assert checkpointing.load_checkpoint(step4).state["step"] == 4
    measured[f"r2 #3 {how}"] = (f"step {again} saved again: the new folder replaced the old one (verifies, newer "
                                f"saved_at)" + (", resume then takes step 6 with 0 fallbacks"
                                               if how == "corrupt newest" else ""))
