"""What the trainer would reject at start-up is refused before a run folder exists, as one line (exit 2):
the checks of minimind_tui/train/precheck.py, which the Train tab runs on the same argv."""
from __future__ import annotations

import json

import pytest
from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.train.args import resolve
from minimind_tui.train.precheck import problems


@pytest.fixture
def project(tmp_path):
    files = write_demo_corpus(tmp_path)
    bad_sft = tmp_path / "bad_sft.jsonl"
    bad_sft.write_text(json.dumps({"conversations": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "yo"}]}) + "\n"
                       + '{"conversations": 5}\n')
    return {**files, "bad_sft": bad_sft}


@pytest.mark.parametrize("mode, data, flags, says", [
    ("pretrain", "pretrain", ["--dim", "100", "--n_heads", "8"], "--dim 100 is not divisible by --n_heads 8"),
    ("pretrain", "pretrain", ["--dim", "40", "--n_heads", "8"], "RoPE needs an even head size"),
    ("pretrain", "pretrain", ["--n_kv_heads", "3"], "--n_heads 4 is not divisible by --n_kv_heads 3"),
    ("pretrain", "sft", [], 'holds sft data ({"conversations": [...]} lines), not pretrain data'),
    ("sft", "pretrain", ["--init", "none"], "holds pretrain data"),
    ("sft", "bad_sft", ["--init", "none"], 'bad_sft.jsonl:2: "conversations" must be a list'),
    ("pretrain", "pretrain", ["--learning_rate=-1e-3"], "--learning_rate must be above 0 (got -0.001)"),
    ("pretrain", "pretrain", ["--grad_clip", "nan"], "--grad_clip must be 0 or more"),
    ("pretrain", "pretrain", ["--warmup_iters", "-1"], "--warmup_iters must be at least 0 (got -1)"),
    ("pretrain", "pretrain", ["--batch_size", "0"], "--batch_size must be at least 1 (got 0)"),
    ("pretrain", "pretrain", ["--tokenizer", "nowhere"], "nowhere: no tokenizer.json there (--tokenizer)"),
    ("sft", "sft", [], "out/pretrain_32.pth: initial weights not found"),
])
def test_the_cli_refuses_before_creating_a_run_folder(tmp_path, project, monkeypatch, capsys, mode, data, flags,
                                                      says):
    status = train_here(tmp_path, mode, "--data_path", str(project[data].name), *TINY, *flags,
                        monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert status == 2, err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_every_problem_names_its_flag_for_the_form(tmp_path, project):
    settings = resolve("pretrain", {"data_path": "sft.jsonl", "dim": 100, "learning_rate": 0.0, "epochs": 0})
    found = {p.flag for p in problems(settings, cwd=tmp_path)}
    assert {"data_path", "dim", "learning_rate", "epochs"} <= found
    assert not problems(resolve("pretrain", {"data_path": "pretrain.jsonl", "preset": "demo"}), cwd=tmp_path)


def test_a_bad_line_is_left_to_skip_bad_lines(tmp_path, project):
    settings = resolve("sft", {"data_path": "bad_sft.jsonl", "init": "none", "skip_bad_lines": True,
                               "preset": "demo"})
    assert problems(settings, cwd=tmp_path) == []


def test_without_a_minimind_tokenizer_the_cli_says_how_to_get_one(tmp_path, project, monkeypatch, capsys):
    """Only the demo preset is made for the bundled demo tokenizer: any other model gets told."""
    monkeypatch.setenv("MINIMIND_TUI_STOP_AT_STEP", "1")
    assert train_here(tmp_path, "pretrain", "--data_path", "pretrain.jsonl", *TINY, "--run_dir", "a",
                      monkeypatch=monkeypatch) == 0
    said = capsys.readouterr()
    assert "warning: no MiniMind tokenizer" in said.out and "minimind-tui download tokenizer" in said.out
    assert "--tokenizer DIR" in said.out
    assert "no MiniMind tokenizer" in (tmp_path / "a" / "train.log").read_text()
    assert train_here(tmp_path, "pretrain", "--data_path", "pretrain.jsonl", "--preset", "demo",
                      "--max_seq_len", "48", "--run_dir", "b", monkeypatch=monkeypatch) == 0
    assert "no MiniMind tokenizer" not in capsys.readouterr().out
