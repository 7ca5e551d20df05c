"""Scenarios 1 and 4: SIGKILL at random moments of a save never leaves a file that resume or chat would
pick, and the next start cleans up; a corrupt newest checkpoint is named and skipped on resume."""
from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
from reliability_kit import train_stopped_run
from testkit import events, of_kind, steps, train_here, wait_until

from minimind_tui.runs import layout
from minimind_tui.train import checkpointing
from model.checkpoint import load_state_dict

KILLS = 20


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, corpus):
    """A real tiny pretraining run stopped at step 6 with checkpoints at steps 2, 4 and 6 (keep_last 3)."""
    root = train_stopped_run(tmp_path_factory, corpus, "ckpt_project")
    run = root / "runs" / "r"
    assert [p.name for p in layout.complete_checkpoints(run)] == ["step_00000002", "step_00000004", "step_00000006"]
    return root


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _saver(run_dir: Path, out_file: Path, loaded, first_step: int) -> None:
    """Child process body: save checkpoints forever, as the trainer does (save, export, prune)."""
    step = first_step
    while True:
        folder = checkpointing.save_checkpoint(run_dir, step, loaded.weights, {**loaded.state, "step": step},
                                               {**loaded.meta, "step": step})
        checkpointing.export_weights(folder, out_file)
        checkpointing.prune(run_dir, 3)
        step += 1


def _fork(body) -> int:
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            body()
        finally:
            os._exit(0)
    return pid


def _phase(run_dir: Path) -> str:
    """Where the kill landed, from what it left behind."""
    hidden = [p for p in (run_dir / layout.CHECKPOINTS).iterdir() if p.name.startswith(checkpointing.TMP_PREFIX)]
    if not hidden:
        return "between saves"
    if any(p.name.endswith(f".del-{p.name.rsplit('-', 1)[-1]}") or ".del-" in p.name for p in hidden):
        return "pruning"
    files = {f.name for p in hidden for f in p.iterdir()}
    return "writing " + (", ".join(sorted(files)) or "(empty folder)")


@pytest.mark.slow
def test_sigkill_at_random_moments_of_saving_never_leaves_a_pickable_partial(stopped_run, tmp_path, measured):
    root = copy_project(stopped_run, tmp_path / "proj")
    run = root / "runs" / "r"
    out_file = root / "out" / "pretrain_32.pth"
    base = checkpointing.load_checkpoint(layout.complete_checkpoints(run)[-1])
    rng = random.Random(20261128)
    phases: dict[str, int] = {}
    save_s = []
    for _ in range(KILLS):
        before = layout.complete_checkpoints(run)
        first = int(before[-1].name.split("_")[1]) + 1
        t0 = time.monotonic()
        pid = _fork(lambda first=first: _saver(run, out_file, base, first))
        # The child saves back to back; a random delay lands the kill anywhere in a save, export or prune.
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        save_s.append(time.monotonic() - t0)
        phase = _phase(run)
        phases[phase] = phases.get(phase, 0) + 1

        # Resume's choice: the newest complete folder, which must load without falling back (a fallback is
        # logged as a note).
        notes: list[str] = []
        latest = checkpointing.load_latest(run, log=notes.append)
        assert latest.path == layout.complete_checkpoints(run)[-1] and not notes, notes
        # Chat's picker: every weights file it would offer loads as a state dict (a partial one raises here).
        for info in layout.find_checkpoints(root):
            assert not info.path.name.startswith("."), info.path
            load_state_dict(info.path)
        # The next start removes what the kill left behind.
        checkpointing.clean_leftovers(run)
        leftovers = [p.name for p in (run / layout.CHECKPOINTS).iterdir()
                     if p.name.startswith(".") or not (p / layout.COMPLETE).is_file()]
        assert leftovers == []
    mid_save = KILLS - phases.get("between saves", 0)
    measured["1 kill during save"] = (f"{KILLS}/{KILLS} kills at random moments (0-250 ms into a save loop), "
                                      f"{mid_save} landed inside a save/prune ({phases}); "
                                      f"0 partial picks by resume or chat, 0 fallbacks needed")
    assert mid_save >= KILLS // 2, phases  # the scenario really exercised interrupted saves


def test_a_real_start_after_a_killed_save_cleans_up_and_resumes(stopped_run, tmp_path, monkeypatch, capsys):
    root = copy_project(stopped_run, tmp_path / "proj")
    run = root / "runs" / "r"
    base = checkpointing.load_checkpoint(layout.complete_checkpoints(run)[-1])
    real_write = checkpointing._write_file

    def child():
        def write_then_hang(path, write):
            real_write(path, write)
            if path.name == layout.STATE_FILE:
                time.sleep(3600)  # killed here: model.pth and state.pt written, no meta.json, no COMPLETE
        checkpointing._write_file = write_then_hang
        checkpointing.save_checkpoint(run, 7, base.weights, {**base.state, "step": 7}, base.meta)

    pid = _fork(child)
    try:
        wait_until(lambda: list((run / layout.CHECKPOINTS).glob(f".step_00000007.tmp-{pid}/{layout.STATE_FILE}")),
                   30, "the child to be mid-save")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    stale_export = root / "out" / f".pretrain_32.pth.{pid}.0123abcd.tmp"  # dataset.atomic's temporary name
    stale_export.write_bytes(b"half a file")
    assert layout.find_checkpoints(root)[0].path.name != stale_export.name

    assert train_here(root, "pretrain", "--resume", "runs/r", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"removed 1 interrupted checkpoint save(s): .step_00000007.tmp-{pid}" in out
    assert "resuming from" in out and "step_00000006 (step 6)" in out
    assert not stale_export.exists()
    assert not [p for p in (run / layout.CHECKPOINTS).iterdir() if p.name.startswith(".")]
    assert [e["step"] for e in steps(run)][-1] == 12 and of_kind(run, "end")[-1]["status"] == "done"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bitflip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("damage, victim", [(_truncate, layout.MODEL_FILE), (_bitflip, layout.MODEL_FILE),
                                            (_truncate, layout.STATE_FILE), (_bitflip, layout.STATE_FILE)],
                         ids=["truncated-model", "bitflipped-model", "truncated-state", "bitflipped-state"])
def test_corrupt_newest_checkpoint_is_named_and_resume_falls_back(stopped_run, tmp_path, monkeypatch, capsys,
                                                                  damage, victim, measured):
    root = copy_project(stopped_run, tmp_path / "proj")
    run = root / "runs" / "r"
    newest = layout.complete_checkpoints(run)[-1]
    damage(newest / victim)

    assert train_here(root, "pretrain", "--resume", "runs/r", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"runs/r/checkpoints/step_00000006/{victim}: checksum mismatch" in out and "falling back" in out
    assert "step_00000004 (step 4)" in out
    warning = [e for e in of_kind(run, "log") if e.get("level") == "warning"]
    assert warning and "step_00000006" in warning[0]["message"]
    evs = events(run)
    last_start = max(i for i, e in enumerate(evs) if e["event"] == "start")
    assert evs[last_start]["resumed_from"] == 4
    assert [e["step"] for e in evs[last_start:] if e["event"] == "step"] == list(range(5, 13))
    assert of_kind(run, "end")[-1]["status"] == "done"
    measured.setdefault("4 corrupt newest", "truncated/bit-flipped model.pth and state.pt: 4/4 named by path, "
                                            "resumed from step 4 instead of 6, run finished")


def test_chat_refuses_a_bit_flipped_run_checkpoint_by_name(stopped_run, tmp_path):
    from minimind_tui.chat.loading import load_session
    from minimind_tui.errors import UserError

    root = copy_project(stopped_run, tmp_path / "proj")
    newest = layout.complete_checkpoints(root / "runs" / "r")[-1]
    load_session(newest / layout.MODEL_FILE, root=root)  # intact: loads
    _bitflip(newest / layout.MODEL_FILE)
    with pytest.raises(UserError, match=r"step_00000006/model.pth: checksum mismatch"):
        load_session(newest / layout.MODEL_FILE, root=root)
