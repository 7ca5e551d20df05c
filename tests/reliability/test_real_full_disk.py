"""Round two, item 9: a real full (or read-only) disk under the run folder, the token cache or --out_dir.

Each disk is a real tmpfs (the `tmpfs` fixture: root only, skipped otherwise), filled with a file, so the
errors are the kernel's, raised where the real code meets them. Before:
- a checkpoint save on a full disk crashed the run: torch's zip writer raises RuntimeError ("unexpected pos
  1600 vs 1494"), and only OSError was caught;
- a full or read-only run folder or token cache at start-up was a raw traceback and exit 1, naming no path;
- a failed export to --out_dir was reported as checkpoint_failed (the checkpoint was fine), and the end
  line said "weights in out/<name>.pth", which had never been written.
"""
from __future__ import annotations

import os

import pytest
from reliability_kit import TINY, fill
from testkit import events, of_kind, train_here

from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout
from minimind_tui.runs.summary import summarize
from minimind_tui.train import checkpointing
from model import checkpoint as model_checkpoint

SLACK = 64 << 10  # left free on a "full" disk: room for events and logs, none for a 270 KB model.pth


def nearly_full(folder):
    """Fill the disk holding `folder`, then give back SLACK bytes; returns the filler."""
    filler = fill(folder)
    os.truncate(filler, max(0, filler.stat().st_size - SLACK))
    return filler


def files_under(folder) -> list[str]:
    """What is left on a test disk besides the filler: every file, hidden temporaries included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "filler")


def train_args(corpus, *extra: str) -> list[str]:
    return ["pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8", "--accumulation_steps",
            "1", "--tokenizer", str(demo_tokenizer_dir()), *extra]


def last_line_error(capsys, code: int) -> str:
    """Exit status 2, no traceback, and the error as the last line on stderr (tokenising progress may come
    before it)."""
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("minimind-tui: "), err
    return line


@pytest.mark.slow
def test_a_save_on_a_full_disk_is_checkpoint_failed_and_training_goes_on(tmpfs, tmp_path, corpus, monkeypatch,
                                                                         measured):
    disk = tmpfs("4m")
    run = disk / "run"
    real_save, real_error = checkpointing.save_checkpoint, model_checkpoint.write_error
    zip_writer_errors = []

    def save(run_dir, step, *a, **kw):
        if step == 4:
            nearly_full(disk)  # the disk fills up before the save of step 4
        elif (disk / "filler").exists():
            hidden = [p.name for p in (run / layout.CHECKPOINTS).iterdir() if p.name.startswith(".")]
            assert hidden == []  # the failed save left nothing behind
            (disk / "filler").unlink()  # then someone frees space
        return real_save(run_dir, step, *a, **kw)

    def write_error(error):
        zip_writer_errors.append(str(error))
        return real_error(error)
    monkeypatch.setattr(checkpointing, "save_checkpoint", save)
    monkeypatch.setattr(model_checkpoint, "write_error", write_error)
    code = train_here(tmp_path, *train_args(corpus, "--save_interval", "4", "--run_dir", str(run)),
                      monkeypatch=monkeypatch)
    assert code == 0
    failed = of_kind(run, "checkpoint_failed")
    assert [e["step"] for e in failed] == [4] and "No space left on device" in failed[0]["reason"]
    assert str(run / layout.CHECKPOINTS) in failed[0]["reason"]  # names the disk
    assert zip_writer_errors and "unexpected pos" in zip_writer_errors[0]  # torch's RuntimeError, really
    assert [e["step"] for e in of_kind(run, "ckpt")] == [8, 12]
    assert [e["step"] for e in of_kind(run, "step")] == list(range(1, 13))  # training went on
    assert events(run)[-1]["status"] == "done"
    assert [p.name for p in layout.complete_checkpoints(run)] == ["step_00000008", "step_00000012"]
    assert any("checkpoint at step 4 FAILED" in n for n in summarize(run).notes)
    measured["r2 #9 save on a full disk"] = ("4 MiB tmpfs filled to 64 KB free before step 4's save: torch's "
                                             f"RuntimeError ({zip_writer_errors[0][:60]}) reported as "
                                             "checkpoint_failed naming the folder, no hidden folder left, "
                                             "steps 5-12 trained, saves at 8 and 12 after space was freed")


def full_run_folder(tmpfs, tmp_path):
    disk = tmpfs("256k")
    fill(disk)
    return disk, ["--run_dir", str(disk / "run")], tmp_path, disk / "run", "No space left on device"


def read_only_run_folder(tmpfs, tmp_path):
    disk = tmpfs("256k", read_only=True)
    return disk, ["--run_dir", str(disk / "run")], tmp_path, disk / "run", "Read-only file system"


def full_project_folder(tmpfs, tmp_path):
    """No --run_dir: the new run folder goes under ./runs, on the full disk."""
    disk = tmpfs("256k")
    fill(disk)
    return disk, [], disk, "runs/", "No space left on device"


@pytest.mark.parametrize("case", [full_run_folder, read_only_run_folder, full_project_folder])
def test_a_run_folder_that_cannot_be_written_at_start_up(tmpfs, tmp_path, corpus, monkeypatch, capsys, case,
                                                         measured):
    disk, extra, cwd, named, reason = case(tmpfs, tmp_path)
    code = train_here(cwd, *train_args(corpus, *extra), monkeypatch=monkeypatch)
    line = last_line_error(capsys, code)
    assert line.startswith(f"minimind-tui: {named}") and f": {reason}" in line
    # 68,032 parameters x 12 bytes; a real checkpoint of this model takes 820 KB (model.pth, state.pt, meta.json).
    assert "each checkpoint of this model needs about 797.2 KB" in line
    assert ("free" in line) == (reason != "Read-only file system")
    assert files_under(disk) == []  # no lock, no lock temporary, no log
    assert not (disk / "run").exists() and not list((disk / "runs").glob("*") if (disk / "runs").exists() else [])
    measured.setdefault("r2 #9 start-up run folder", []).append(f"{case.__name__}: {line[len('minimind-tui: '):]}")


@pytest.mark.parametrize("read_only", [False, True], ids=["full", "read-only"])
def test_a_token_cache_that_cannot_be_written(tmpfs, tmp_path, corpus, monkeypatch, capsys, read_only, measured):
    disk = tmpfs("256k", read_only=read_only)
    if not read_only:
        fill(disk)
    code = train_here(tmp_path, *train_args(corpus, "--run_dir", "runs/r"), env={"MINIMIND_CACHE": str(disk)},
                      monkeypatch=monkeypatch)
    line = last_line_error(capsys, code)
    reason = "Read-only file system" if read_only else "No space left on device"
    assert line.startswith(f"minimind-tui: {disk / 'tokens'}: {reason}")
    assert f"the token cache of {corpus['pretrain']} needs up to" in line and "MINIMIND_CACHE" in line
    assert files_under(disk) == []  # the build's temporary folder is gone
    assert events(tmp_path / "runs" / "r")[-1]["status"] == "failed"  # the run says why it ended
    measured.setdefault("r2 #9 token cache", []).append(line[len("minimind-tui: "):])


@pytest.mark.slow
@pytest.mark.parametrize("read_only", [False, True], ids=["full", "read-only"])
def test_only_the_export_fails(tmpfs, tmp_path, corpus, monkeypatch, capsys, read_only, measured):
    out = tmpfs("256k", read_only=read_only)
    if not read_only:
        fill(out)
    run = tmp_path / "runs" / "r"
    code = train_here(tmp_path, *train_args(corpus, "--save_interval", "4", "--run_dir", "runs/r", "--out_dir",
                                            str(out)), monkeypatch=monkeypatch)
    printed = capsys.readouterr().out
    assert code == 0 and events(run)[-1]["status"] == "done"
    assert of_kind(run, "checkpoint_failed") == []  # the checkpoints were saved
    saved = of_kind(run, "ckpt")
    assert [e["step"] for e in saved] == [4, 8, 12] and all(e["weights"] is None for e in saved)
    exported = out / "pretrain_32.pth"
    warnings = [e["message"] for e in of_kind(run, "log") if e.get("level") == "warning"]
    assert len(warnings) == 3 and all(f"exporting it to {exported} FAILED" in w for w in warnings)
    final = layout.checkpoint_dir(run, 12) / layout.MODEL_FILE
    assert checkpointing.load_checkpoint(final.parent).state["step"] == 12
    done = next(line for line in printed.splitlines() if line.startswith("done:"))
    assert f"weights in {final.relative_to(tmp_path)} (not in {exported}: its export failed" in done
    assert files_under(out) == []  # no weights, no sidecar, no temporary
    s = summarize(run)
    assert s.status == "done" and not any("checkpoint at step" in n and "FAILED:" in n for n in s.notes)
    measured.setdefault("r2 #9 export only", []).append(
        f"{'read-only' if read_only else 'full'} --out_dir: exit 0, end done, 0 checkpoint_failed, 3 warnings; "
        f"{done}")
