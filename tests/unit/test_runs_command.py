"""`minimind-tui runs list|stop` from a shell."""
from __future__ import annotations

import sys
from pathlib import Path

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
