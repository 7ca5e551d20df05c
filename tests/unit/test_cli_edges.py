"""The command line's edges: a wrong flag shows the usage of the command being typed, a closed pipe ends
quietly, an empty project says how to start."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from canned import make_run  # noqa: E402

from minimind_tui.cli import main  # noqa: E402


@pytest.mark.parametrize("argv, usage", [
    (["train", "pretrain", "--bogus_flag"], "usage: minimind-tui train pretrain "),
    (["runs", "list", "--bogus"], "usage: minimind-tui runs list "),
    (["--bogus"], "usage: minimind-tui [-h]"),
])
def test_an_unknown_flag_shows_the_usage_of_the_command_typed(capsys, argv, usage):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(usage) and f"unrecognized arguments: {argv[-1]}" in err


def test_runs_list_into_a_closed_pipe_ends_quietly(tmp_path):
    for i in range(3):
        make_run(tmp_path, f"20251101-10000{i}-sft", steps=3, end="done")
    read, write = os.pipe()
    os.close(read)  # `| head` that has already exited
    p = subprocess.run([sys.executable, "-m", "minimind_tui", "--root", str(tmp_path), "runs", "list"],
                       stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert p.stderr == "" and p.returncode == 141


def test_an_empty_project_says_how_to_start(tmp_path, capsys):
    assert main(["--root", str(tmp_path), "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "no runs under" in out and "minimind-tui --demo" in out and "minimind-tui download" in out
