"""Scenario 11: out of GPU memory. On CPU through the test hook (OOM whenever a batch is larger than N);
on a GPU for real. The run ends with an `oom` event naming step, rank, batch size and memory, exit
status 3, and the dashboard's wording; --auto_batch_size finds the largest batch that fits first."""
from __future__ import annotations

import json

import pytest
import torch
from reliability_kit import TINY
from testkit import events, of_kind, steps, train_here

from minimind_tui.runs import layout
from minimind_tui.runs.summary import summarize

HOOK = "MINIMIND_TUI_FAKE_OOM_ABOVE_BATCH"


def test_oom_is_reported_with_step_rank_batch_and_a_suggestion(tmp_path, corpus, monkeypatch, capsys):
    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--run_dir", "r", env={HOOK: "5"}, monkeypatch=monkeypatch)
    assert code == 3  # distinct from done/stopped (0), crash (1) and bad input (2)
    run = tmp_path / "r"
    oom = of_kind(run, "oom")[0]
    assert {k: oom[k] for k in ("step", "rank", "batch_size", "suggestion")} == \
        {"step": 0, "rank": 0, "batch_size": 8, "suggestion": 4}
    assert "mem_gb" in oom  # measured on CUDA; null on a CPU
    assert events(run)[-1]["event"] == "end" and events(run)[-1]["status"] == "oom"
    s = summarize(run, exit_code=3)
    assert s.status == "oom" and s.reason == "out of GPU memory at step 0 — try batch size 4"
    err = capsys.readouterr().err
    assert "try --batch_size 4 (with --accumulation_steps 2" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["--auto_batch_size", "--auto-batch-size"])
def test_auto_batch_size_halves_to_the_largest_that_fits(tmp_path, corpus, monkeypatch, capsys, spelling, measured):
    args = ["--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "32", "--accumulation_steps", "2",
            spelling, "--save_interval", "100"]
    code = train_here(tmp_path, "pretrain", *args, "--run_dir", "r", env={HOOK: "5",
                      "MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "auto batch size: 32 does not fit" in out and "trying 16" in out and "trying 4" in out
    run = tmp_path / "r"
    start = of_kind(run, "start")[0]
    assert start["batch_size"] == 4 and start["accumulation_steps"] == 16  # effective batch 64 kept
    assert any("auto batch size: 4 fits" in e["message"] for e in of_kind(run, "log"))
    assert steps(run)[0]["samples"] == 64
    settings = json.loads((run / layout.CONFIG).read_text())["settings"]
    assert settings["batch_size"] == 4 and settings["accumulation_steps"] == 16
    # A resumed run keeps the chosen batch without probing again.
    assert train_here(tmp_path, "pretrain", "--resume", "r", env={HOOK: "5"}, monkeypatch=monkeypatch) == 0
    assert "auto batch size" not in capsys.readouterr().out
    assert of_kind(run, "start")[-1]["batch_size"] == 4 and of_kind(run, "end")[-1]["status"] == "done"
    assert [e["step"] for e in steps(run)] == [1, 2]
    measured["11 auto batch size"] = "asked 32 with OOM above 5: probed 32, 16, 8 -> 4, accumulation 2 -> 16"


def test_auto_batch_size_keeps_a_batch_that_fits(tmp_path, corpus, monkeypatch, capsys):
    assert train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--auto_batch_size", "--run_dir", "r",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch) == 0
    assert of_kind(tmp_path / "r", "start")[0]["batch_size"] == 8
    assert "auto batch size: 8 fits at 48 tokens" in capsys.readouterr().out


def test_even_batch_one_does_not_fit_is_an_oom_exit(tmp_path, corpus, monkeypatch):
    from minimind_tui.train import auto_batch, fault_hooks

    def never_fits(batch_size):
        raise torch.OutOfMemoryError("simulated: nothing fits")
    monkeypatch.setattr(fault_hooks, "fake_oom_for_batch", never_fits)
    monkeypatch.setattr(auto_batch, "fake_oom_for_batch", never_fits)
    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "4",
                      "--auto_batch_size", "--run_dir", "r", monkeypatch=monkeypatch)
    assert code == 3 and of_kind(tmp_path / "r", "end")[-1]["status"] == "oom"
    oom = of_kind(tmp_path / "r", "oom")[0]
    assert oom["batch_size"] == 1 and oom["suggestion"] is None
    assert summarize(tmp_path / "r", exit_code=3).reason.endswith("even batch size 1 does not fit; try a shorter "
                                                                 "max_seq_len or a smaller model")


def _long_corpus(path, lines=2000, chars=6000):
    import random
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "训练", "数据", "模型", "hello", "world", "1234"]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(chars // 5))},
                               ensure_ascii=False) + "\n")
    return path


BIG = ["--dim", "1024", "--n_layers", "16", "--n_heads", "16", "--n_kv_heads", "4", "--max_seq_len", "2048",
       "--device", "cuda:0", "--dtype", "bfloat16", "--chunk_tokens", "-1", "--log_interval", "1"]


@pytest.mark.gpu
def test_real_cuda_oom_is_reported(tmp_path, monkeypatch):
    data = _long_corpus(tmp_path / "long.jsonl")
    code = train_here(tmp_path, "pretrain", "--data_path", str(data), *BIG, "--batch_size", "2000",
                      "--accumulation_steps", "1", "--run_dir", "r", monkeypatch=monkeypatch)
    assert code == 3
    oom = of_kind(tmp_path / "r", "oom")[0]
    assert oom["batch_size"] == 2000 and oom["suggestion"] == 1000 and oom["mem_gb"] > 1
    assert summarize(tmp_path / "r").reason.startswith("out of GPU memory at step 0 — try batch size 1000")


@pytest.mark.gpu
def test_real_cuda_auto_batch_size_fits_and_trains(tmp_path, monkeypatch, capsys):
    data = _long_corpus(tmp_path / "long.jsonl", lines=600)
    code = train_here(tmp_path, "pretrain", "--data_path", str(data), *BIG, "--batch_size", "512",
                      "--accumulation_steps", "1", "--auto_batch_size", "--run_dir", "r",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "2"}, monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert code == 0, out
    start = of_kind(tmp_path / "r", "start")[0]
    assert 1 <= start["batch_size"] < 512 and start["batch_size"] * start["accumulation_steps"] == 512
    assert "does not fit" in out


def test_oom_with_passes_bounded_by_the_chunk_budget_advises_the_budget(tmp_path, corpus, monkeypatch, capsys):
    """8 x 48 tokens in passes of at most 192: a batch of 4 would run the same 192-token passes."""
    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--chunk_tokens", "192", "--run_dir", "r", env={"MINIMIND_TUI_FAKE_OOM_AT_STEP": "1"},
                      monkeypatch=monkeypatch)
    assert code == 3
    oom = of_kind(tmp_path / "r", "oom")[0]
    assert (oom["suggestion"], oom["chunk_tokens"], oom["suggest_chunk_tokens"]) == (None, 192, 96)
    assert "try --chunk_tokens 96" in capsys.readouterr().err
    assert summarize(tmp_path / "r", exit_code=3).reason.endswith("try chunk_tokens 96 (smaller forward passes)")
    # Once the whole batch fits in one pass, the batch is what to halve again.
    code = train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "4",
                      "--chunk_tokens", "192", "--run_dir", "r2", env={"MINIMIND_TUI_FAKE_OOM_AT_STEP": "1"},
                      monkeypatch=monkeypatch)
    oom = of_kind(tmp_path / "r2", "oom")[0]
    assert code == 3 and (oom["suggestion"], oom["suggest_chunk_tokens"]) == (2, None)


def test_auto_batch_size_shrinks_the_pass_when_the_pass_sets_the_peak(monkeypatch):
    """64 x 512 in passes of 16 rows (8192 tokens); only 2048 tokens fit in a pass. Halving the batch would
    take it down to 4 before any pass got smaller; the search halves the pass and keeps the batch."""
    from minimind_tui.train import auto_batch

    probes = []

    def fits(model, batch_size, seq_len, vocab, device, rows_per_pass, autocast):
        probes.append((batch_size, rows_per_pass))
        if min(rows_per_pass, batch_size) * seq_len > 2048:
            raise torch.OutOfMemoryError("simulated: the pass is too big")
    released = []

    def empty_cache():
        import sys
        assert sys.exc_info()[0] is None  # not inside the except block: the failed probe is gone
        released.append("empty_cache")
    monkeypatch.setattr(auto_batch, "fits", fits)
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: released.append(device))
    found = auto_batch.find_batch_size(None, 64, 512, 100, "cuda:0", rows_per_pass=16, log=lambda text: None)
    assert found == (64, 4) and probes == [(64, 16), (64, 8), (64, 4)]
    assert released == ["empty_cache", "cuda:0"] * 3  # after every probe, the last (successful) one included
    # Whole batch in one pass: the batch halves, as before.
    probes.clear()
    assert auto_batch.find_batch_size(None, 16, 512, 100, "cuda:0", rows_per_pass=None, log=print) == (4, None)
    assert probes == [(16, 16), (8, 8), (4, 4)]


def test_auto_batch_size_keeps_the_batch_and_records_the_smaller_budget(tmp_path, corpus, monkeypatch, capsys):
    from minimind_tui.train import auto_batch

    real = auto_batch.fits

    def fits(model, batch_size, seq_len, vocab, device, rows_per_pass, autocast):
        if min(rows_per_pass, batch_size) * seq_len > 96:  # a pass of more than two 48-token rows runs out
            raise torch.OutOfMemoryError("simulated: the pass is too big")
        return real(model, batch_size, seq_len, vocab, device, rows_per_pass, autocast)
    monkeypatch.setattr(auto_batch, "fits", fits)
    assert train_here(tmp_path, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--chunk_tokens", "192", "--auto_batch_size", "--run_dir", "r",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch) == 0
    assert "passes of 4 x 48 tokens do not fit; trying 2 per pass" in capsys.readouterr().out
    start = of_kind(tmp_path / "r", "start")[0]
    assert start["batch_size"] == 8 and start["accumulation_steps"] == 1
    assert json.loads((tmp_path / "r" / layout.CONFIG).read_text())["settings"]["chunk_tokens"] == 96
    assert any("(--chunk_tokens 96; was 192)" in e["message"] for e in of_kind(tmp_path / "r", "log"))
