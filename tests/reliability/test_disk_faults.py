"""Scenario 3: the disk fills up, or the run folder goes read-only, while a checkpoint is being written.

Simulated in-process at the write calls, so that every save after the first fails: `checkpoint_failed` is
written right after the failing step, the previous checkpoint stays byte-identical, no half-written folder is
left, and the run does not claim success. The same on a real full tmpfs (torch's own error included), and a
failing export to --out_dir, which is not a failed checkpoint: test_real_full_disk.py."""
from __future__ import annotations

import errno
import hashlib

import pytest
from reliability_kit import TINY
from testkit import events, of_kind, train_here

from minimind_tui.runs import layout
from minimind_tui.runs.summary import summarize
from minimind_tui.train import checkpointing


def digest_tree(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def disk_full_mid_file(monkeypatch):
    real = checkpointing._write_file

    def write(path, fn):
        if path.name == layout.STATE_FILE and "step_00000002" not in str(path):
            with open(path, "wb") as f:
                f.write(b"\0" * 4096)  # the disk took a few blocks, then ran out
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, fn)
    monkeypatch.setattr(checkpointing, "_write_file", write)


def run_dir_read_only(monkeypatch):
    real = checkpointing._write_file

    def write(path, fn):
        if "step_00000002" not in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, fn)
    monkeypatch.setattr(checkpointing, "_write_file", write)


@pytest.mark.slow
@pytest.mark.parametrize("fault, text", [(disk_full_mid_file, "No space left on device"),
                                         (run_dir_read_only, "Read-only file system")],
                         ids=["disk-full-mid-file", "run-dir-read-only"])
def test_failed_save_is_reported_and_the_previous_checkpoint_is_untouched(tmp_path, corpus, monkeypatch, fault,
                                                                          text, measured):
    fault(monkeypatch)
    first = {}
    real_save = checkpointing.save_checkpoint

    def remember_first(run_dir, step, *a, **kw):
        if step > 2 and not first:  # what step 2 looked like before any failing save touched the disk
            first.update(digest_tree(layout.checkpoint_dir(run_dir, 2)))
        return real_save(run_dir, step, *a, **kw)
    monkeypatch.setattr(checkpointing, "save_checkpoint", remember_first)

    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "16",
                      "--accumulation_steps", "1", "--save_interval", "2", "--run_dir", "r", monkeypatch=monkeypatch)
    run = tmp_path / "r"
    evs = events(run)
    failed = of_kind(run, "checkpoint_failed")
    assert code == 1  # not success
    assert [e["step"] for e in failed] == [4, 6] and text in failed[0]["reason"]
    # Saves are written in the background and joined before the next one: a failure is reported after its step
    # and no later than the next save (before that save's own report and before any step past it).
    order = [(e["event"], e.get("step")) for e in evs]
    reported = order.index(("checkpoint_failed", 4))
    assert order.index(("step", 4)) < reported < order.index(("checkpoint_failed", 6))
    assert all(step is None or step <= 6 for _, step in order[:reported] if _ == "step")
    delay = failed[0]["time"] - next(e["time"] for e in evs if e["event"] == "step" and e["step"] == 4)
    assert evs[-1]["event"] == "end" and evs[-1]["status"] == "failed"
    assert "done" not in [e.get("status") for e in of_kind(run, "end")]
    # The previous checkpoint is byte-identical, and it is still what resume would use.
    step2 = layout.checkpoint_dir(run, 2)
    assert digest_tree(step2) == first
    assert layout.complete_checkpoints(run) == [step2]
    assert not [p for p in (run / layout.CHECKPOINTS).iterdir() if p.name.startswith(".")]
    assert checkpointing.load_latest(run, log=lambda _m: None).path == layout.complete_checkpoints(run)[-1]
    # The dashboard's summary says so.
    s = summarize(run, exit_code=1)
    assert s.status == "failed" and "could not be saved" in s.reason
    assert any("checkpoint at step 4 FAILED" in n and text in n for n in s.notes)
    assert "FAILED" in (run / layout.LOG).read_text()
    measured.setdefault("3 disk faults", [])
    measured["3 disk faults"].append(f"{fault.__name__}: checkpoint_failed {delay * 1000:.0f} ms after its step")
