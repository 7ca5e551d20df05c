"""`minimind-tui runs list|stop` from a shell."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from canned import make_run  # noqa: E402

from minimind_tui.cli import main  # noqa: E402


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
