"""`minimind-tui runs list|stop` from a shell."""
from __future__ import annotations

from pathlib import Path

import pytest
from canned import make_run

from minimind_tui.cli import main


def test_runs_list(tmp_path, capsys):
    make_run(tmp_path, "20251101-100000-pretrain", mode="pretrain", steps=100, total=100, end="done")
    make_run(tmp_path, "20251101-110000-sft", steps=5, end="failed", reason="CUDA error: device-side assert",
             ckpt_at=())
    assert main(["--root", str(tmp_path), "runs", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RUN", "STATUS", "MODE", "DATASET", "LOSS", "STEP", "TIME", "REASON"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert rows["20251101-100000-pretrain"].split()[1:7] == ["done", "pretrain", "sft_mini_512.jsonl", "2.002",
                                                             "100/100", "16m41s"]
    assert rows["20251101-110000-sft"].split()[1] == "failed"
    assert rows["20251101-110000-sft"].endswith("CUDA error: device-side assert")


def test_runs_list_accepts_root_after_the_subcommand(tmp_path, capsys):
    assert main(["runs", "list", "--root", str(tmp_path)]) == 0
    assert "no runs under" in capsys.readouterr().out


def test_runs_stop_unknown_run_is_one_clear_line(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "runs", "stop", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minimind-tui: nope: no such run") and "runs list" in err


def test_runs_stop_a_run_that_is_not_running(tmp_path, capsys):
    make_run(tmp_path, "20251101-100000-sft", steps=5, end="done")
    assert main(["--root", str(tmp_path), "runs", "stop", "20251101-100000-sft"]) == 0
    assert "no running trainer process" in capsys.readouterr().out


def as_bash_reads_it(word: str) -> str:
    """What bash makes of `word` pasted into a command line (and proof that nothing in it ran)."""
    import subprocess

    return subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", ["20251101-100000-sft my copy", "odd\nname-sft", "$(touch pwned)-sft",
                                  "it's-\x1b[31mred-sft"])
def test_runs_list_shows_one_row_per_run_with_its_name_quoted_for_the_shell(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path, name, steps=5, end="failed", reason="line one\nline two")
    make_run(tmp_path, "20251101-090000-sft", steps=5, end="done")
    assert main(["--root", str(tmp_path), "runs", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "\x1b" not in "".join(out)
    row = next(line for line in out[1:] if not line.startswith("20251101-090000-sft"))
    quoted = row[:row.index("  failed")].rstrip()
    assert as_bash_reads_it(quoted) == name and not (tmp_path / "pwned").exists()
    assert row.endswith("line one\\nline two")


def test_the_resume_hint_pastes_into_a_shell(tmp_path, monkeypatch):
    from minimind_tui.runs.launcher import resume_command

    monkeypatch.chdir(tmp_path)
    run = "runs/a b\n$(touch pwned)"
    hint = resume_command("sft", run)
    assert "\n" not in hint and hint.startswith("minimind-tui train sft --resume ")
    assert as_bash_reads_it(hint.split("--resume ", 1)[1]) == run and not Path("pwned").exists()


def test_runs_list_survives_poisoned_run_folders(tmp_path, capsys, monkeypatch):
    """Issue 15 #12: each bad folder is a row saying why; the good run is listed as before; nothing blocks."""
    import os
    import shutil

    from testkit import finishes

    from minimind_tui.runs import layout

    make_run(tmp_path, "20251101-100000-pretrain", mode="pretrain", steps=100, total=100, end="done")
    (make_run(tmp_path, "20251101-090000-sft", end="done") / "config.json").write_text("[1,2]")
    with open(make_run(tmp_path, "20251101-091000-sft", end="done") / "metrics.jsonl", "ab") as f:
        f.write(b'{"event": "step", "time": 1, "step": 3, "loss": "low"}\n')
    fifo = make_run(tmp_path, "20251101-092000-sft", end="done") / "metrics.jsonl"
    fifo.unlink()
    os.mkfifo(fifo)
    doomed = make_run(tmp_path, "20251101-093000-sft", end="done")
    real_list_runs = layout.list_runs

    def list_then_delete(root):  # the folder goes away after the listing, before its summary
        found = real_list_runs(root)
        shutil.rmtree(doomed)
        return found

    monkeypatch.setattr(layout, "list_runs", list_then_delete)
    assert finishes(lambda: main(["--root", str(tmp_path), "runs", "list"])) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == ["20251101-090000-sft", "20251101-091000-sft", "20251101-092000-sft",
                            "20251101-100000-pretrain"]
    assert rows["20251101-100000-pretrain"].split()[1:3] == ["done", "pretrain"]
    assert rows["20251101-090000-sft"].split()[1] == "unreadable"
    assert rows["20251101-090000-sft"].endswith("config.json holds a list, not an object")
    assert rows["20251101-091000-sft"].endswith("metrics.jsonl: a 'step' event has loss = 'low', not a number")
    assert rows["20251101-092000-sft"].endswith("metrics.jsonl is a FIFO, not a regular file")
