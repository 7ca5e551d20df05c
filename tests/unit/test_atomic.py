"""dataset.atomic: whole files or nothing, and never a write through a planted symlink."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from dataset import atomic


@pytest.fixture
def next_tokens(monkeypatch):
    """Make the helper's next temporary names predictable, as an attacker guessing them would need."""
    def use(*tokens):
        queue = list(tokens)
        monkeypatch.setattr(atomic, "_token", lambda: queue.pop(0) if queue else "ffffffff")
    return use


def temp_name(path, token):
    return path.with_name(f".{path.name}.{os.getpid()}.{token}{atomic.TEMP_SUFFIX}")


def plant_symlink(at, victim):
    victim.write_text("not yours")
    at.symlink_to(victim)


def test_bytes_text_or_a_writer_replace_the_file_and_leave_nothing_behind(tmp_path):
    path = tmp_path / "f.json"
    atomic.write_atomic(path, b"one")
    atomic.write_atomic(path, "二")
    assert path.read_text(encoding="utf-8") == "二"
    atomic.write_atomic(path, lambda f: f.write(b"three"))
    assert path.read_bytes() == b"three"
    atomic.write_atomic(tmp_path / "private", "x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "private"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"half")
        raise OSError("No space left on device")
    with pytest.raises(OSError, match="No space"):
        atomic.write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["weights.pth"]


def test_a_symlink_planted_at_the_temporary_name_is_never_written_through(tmp_path, next_tokens):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    out = tmp_path / "out"
    out.mkdir()
    path = out / "NAME.meta.json"
    next_tokens("0badf00d", "00c0ffee")
    plant_symlink(temp_name(path, "0badf00d"), victim)
    atomic.write_atomic(path, "{}")
    assert victim.read_text() == "not yours"
    assert path.read_text() == "{}" and not path.is_symlink()
    assert temp_name(path, "0badf00d").is_symlink()  # left as it was; another name was used
    assert not temp_name(path, "00c0ffee").exists()


def test_the_sidecar_ignores_symlinks_at_its_old_and_its_new_temporary_names(tmp_path, next_tokens):
    """Issue 15 #8: a symlink at out/.NAME.meta.json.tmp made the trainer write through it."""
    from minimind_tui.tokenizer_choice import sidecar_path
    from minimind_tui.train.model_setup import write_sidecar

    out = tmp_path / "out"
    out.mkdir()
    weights = out / "pretrain_32.pth"
    weights.write_bytes(b"weights")
    sidecar = sidecar_path(weights)
    old_victim, new_victim = tmp_path / "old_victim", tmp_path / "new_victim"
    plant_symlink(sidecar.with_name(f".{sidecar.name}.tmp"), old_victim)  # the name used before
    next_tokens("0badf00d")
    plant_symlink(temp_name(sidecar, "0badf00d"), new_victim)
    write_sidecar(weights, {"step": 3})
    assert old_victim.read_text() == "not yours" and new_victim.read_text() == "not yours"
    assert '"step": 3' in sidecar.read_text()


def test_a_symlink_at_the_target_itself_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    path = tmp_path / "config.json"
    plant_symlink(path, victim)
    atomic.write_atomic(path, "new")
    assert victim.read_text() == "not yours" and path.read_text() == "new" and not path.is_symlink()


def test_private_files_and_copies_go_through_the_same_names(tmp_path, next_tokens):
    from minimind_tui.runs import layout

    victim = tmp_path / "victim"
    path = tmp_path / "stop_request.json"
    next_tokens("0badf00d")
    plant_symlink(temp_name(path, "0badf00d"), victim)
    layout.write_private(path, "{}")
    assert victim.read_text() == "not yours" and stat.S_IMODE(path.stat().st_mode) == 0o600

    source = tmp_path / "model.pth"
    source.write_bytes(b"w")
    next_tokens("0badf00d")
    atomic.copy_atomic(source, tmp_path / "exported.pth")
    assert (tmp_path / "exported.pth").read_bytes() == b"w"
    assert victim.read_text() == "not yours"


def test_a_copy_shares_nothing_with_its_source(tmp_path):
    """Issue 15 #1: exported weights that shared the checkpoint's inode were rewritten with it."""
    source = tmp_path / "model.pth"
    source.write_bytes(os.urandom(3 << 20))  # over the copy's 1 MiB blocks
    before = source.read_bytes()
    target = tmp_path / "out" / "pretrain_512.pth"
    target.parent.mkdir()
    atomic.copy_atomic(source, target)
    assert target.read_bytes() == before and target.stat().st_ino != source.stat().st_ino
    assert target.stat().st_nlink == 1 == source.stat().st_nlink
    with open(target, "r+b") as f:  # what cp, scp or torch.save to the same path do: write in place
        f.write(b"\0" * 4096)
    assert source.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["pretrain_512.pth"]


def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "new", tmp_path / "step_00000004"
    a.mkdir()
    b.mkdir()
    (a / "COMPLETE").write_text("new")
    (b / "COMPLETE").write_text("old")
    if not atomic.exchange(a, b):
        pytest.skip("this file system cannot swap two names in one step (the caller renames twice)")
    assert (b / "COMPLETE").read_text() == "new" and (a / "COMPLETE").read_text() == "old"
    with pytest.raises(FileNotFoundError):
        atomic.exchange(a, tmp_path / "missing")


def test_create_exclusive_never_replaces(tmp_path):
    lock = tmp_path / "trainer.lock"
    assert atomic.create_exclusive(lock, "1 2.0 host\n")
    assert not atomic.create_exclusive(lock, "3 4.0 host\n")
    assert lock.read_text() == "1 2.0 host\n" and [p.name for p in tmp_path.iterdir()] == ["trainer.lock"]


def test_a_resumable_part_file_that_is_a_symlink_is_refused(tmp_path):
    victim = tmp_path / "victim"
    part = tmp_path / "model.bin.part"
    plant_symlink(part, victim)
    with pytest.raises(OSError):
        open(part, "ab", opener=atomic.no_follow)
    assert victim.read_text() == "not yours"


def test_stale_temporaries_are_those_of_writers_that_are_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".w.pth.{os.getpid()}.0123abcd.tmp"
    theirs = tmp_path / f".w.pth.{dead.pid}.0123abcd.tmp"
    other = tmp_path / f".w.meta.json.{dead.pid}.0123abcd.tmp"
    for p in (mine, theirs, other):
        p.write_bytes(b"")
    from minimind_tui.runs.pids import alive
    assert atomic.stale_temps(tmp_path, "*.pth", alive) == [theirs]
