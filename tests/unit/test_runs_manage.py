"""`runs export` (CSV, TensorBoard), `runs rm`, `runs rename` and `runs note`: managing runs from a shell."""
from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from canned import make_run  # noqa: E402

from minimind_tui.cli import main  # noqa: E402
from minimind_tui.runs import events, layout  # noqa: E402


def runs(root, *args):
    return main(["--root", str(root), "runs", *args])


@pytest.fixture
def resumed_run(tmp_path):
    """10 steps with evaluations at 5 and 10, then resumed from step 5: steps 6-8 again, with other losses."""
    run = make_run(tmp_path, "20251101-100000-sft", steps=10, total=10, end="stopped", ckpt_at=(5,))
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("eval", step=5, loss=3.25, samples=4, tokens=40, seconds=0.1))
        f.write(events.encode("eval", step=10, loss=3.0, samples=4, tokens=40, seconds=0.1))
        f.write(events.encode("start", schema=events.SCHEMA_VERSION, mode="sft", total=10, resumed_from=5))
        for step in (6, 7, 8):
            f.write(events.encode("step", step=step, total=10, epoch=2, loss=1.5, lr=1e-5))
    return run


def test_export_csv_has_one_row_per_step_replayed_steps_replacing_the_old(tmp_path, resumed_run, monkeypatch,
                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    assert runs(tmp_path, "export", resumed_run.name, "--csv") == 0
    rows = list(csv.DictReader((tmp_path / f"{resumed_run.name}.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 11))
    by_step = {int(r["step"]): r for r in rows}
    assert by_step[7]["loss"] == "1.5" and by_step[7]["epoch"] == "2"  # the resumed run's, not the first
    assert by_step[1]["epoch"] == "1"  # the first run wrote schema 1 (epochs from 0): exported from 1 all the same
    assert by_step[5]["eval_loss"] == "3.25" and by_step[10]["eval_loss"] == "3.0" and by_step[4]["eval_loss"] == ""
    assert runs(tmp_path, "export", resumed_run.name, "--csv", "-") == 0
    out = capsys.readouterr().out
    assert list(csv.DictReader(io.StringIO(out))) == rows


def test_export_tensorboard_event_files(tmp_path, resumed_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tmp_path / "tb"
    assert runs(tmp_path, "export", resumed_run.name, "--tensorboard", str(folder)) == 0
    acc = EventAccumulator(str(folder))
    acc.Reload()
    loss = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert sorted(loss) == list(range(1, 11)) and loss[7] == 1.5
    assert [(e.step, e.value) for e in acc.Scalars("eval/loss")] == [(5, 3.25), (10, 3.0)]


def test_export_says_what_to_write(tmp_path, resumed_run, capsys):
    assert runs(tmp_path, "export", resumed_run.name) == 2
    assert "--csv" in capsys.readouterr().err


def live_run(root):
    return make_run(root, "20251101-120000-sft", steps=3, pid=os.getpid(), heartbeat_age=1.0, now=time.time())


def test_rm_refuses_a_live_run_and_asks_unless_yes(tmp_path, resumed_run, capsys, monkeypatch):
    live = live_run(tmp_path)
    assert runs(tmp_path, "rm", live.name, "--yes") == 2
    assert "is live: stop it first" in capsys.readouterr().err and live.is_dir()
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))  # not a terminal: no question, a refusal
    assert runs(tmp_path, "rm", resumed_run.name) == 2
    assert "--yes" in capsys.readouterr().err and resumed_run.is_dir()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert runs(tmp_path, "rm", resumed_run.name) == 1 and resumed_run.is_dir()
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert runs(tmp_path, "rm", resumed_run.name) == 0 and not resumed_run.exists()


def test_rm_touches_only_run_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious").mkdir()
    assert runs(tmp_path, "rm", "precious", "--yes") == 2
    assert "not a run folder" in capsys.readouterr().err and (tmp_path / "precious").is_dir()


def test_rename(tmp_path, resumed_run, capsys):
    live = live_run(tmp_path)
    assert runs(tmp_path, "rename", live.name, "mine") == 2 and live.is_dir()
    assert runs(tmp_path, "rename", resumed_run.name, "../escape") == 2
    assert runs(tmp_path, "rename", resumed_run.name, live.name) == 2  # taken
    assert runs(tmp_path, "rename", resumed_run.name, "baseline lr 5e-5") == 0
    assert (tmp_path / "runs" / "baseline lr 5e-5").is_dir() and not resumed_run.exists()


def test_a_note_is_kept_in_the_run_folder_and_shown_in_the_list(tmp_path, resumed_run, capsys):
    make_run(tmp_path, "20251101-090000-pretrain", mode="pretrain", steps=3, end="done")
    assert runs(tmp_path, "note", resumed_run.name, "baseline: lr 5e-5, no warm-up, the one to beat") == 0
    assert (resumed_run / layout.NOTES).read_text().startswith("baseline")
    capsys.readouterr()
    assert runs(tmp_path, "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RUN", "STATUS", "MODE", "DATASET", "LOSS", "STEP", "TIME", "NOTE", "REASON"]
    row = next(line for line in out if line.startswith(resumed_run.name))
    assert "baseline: lr 5e-5, no warm-up…" in row
    assert runs(tmp_path, "note", resumed_run.name) == 0
    assert capsys.readouterr().out.strip() == "baseline: lr 5e-5, no warm-up, the one to beat"
    assert runs(tmp_path, "note", resumed_run.name, "") == 0 and not (resumed_run / layout.NOTES).exists()
