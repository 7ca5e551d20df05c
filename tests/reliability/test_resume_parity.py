"""Scenario 2: a stopped and resumed run equals the uninterrupted one: losses, learning rates and the
exact samples of every batch, in one process and with two Gloo processes (DDP)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_kit import TINY
from testkit import cli_env, of_kind, steps, train_here

from minimind_tui.train import loop

COMMON = [*TINY, "--accumulation_steps", "2", "--epochs", "2", "--shuffle", "1", "--seed", "11",
          "--save_interval", "100", "--learning_rate", "3e-3", "--warmup_iters", "2"]


@pytest.fixture
def record_batches(monkeypatch):
    """The sample indices of every batch the trainer actually consumes, in order."""
    seen: list[tuple[int, ...]] = []
    real = loop.iterate

    def iterate(batches, collate, num_workers=0):
        def recording(b):
            seen.append(tuple(int(i) for i in b))
            return collate(b)
        return real(batches, recording, num_workers)
    monkeypatch.setattr(loop, "iterate", iterate)
    return seen


@pytest.mark.slow
def test_single_process_resume_equals_uninterrupted(tmp_path, corpus, monkeypatch, record_batches, measured):
    args = ["--data_path", str(corpus["pretrain"]), *COMMON, "--batch_size", "8"]
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "full", monkeypatch=monkeypatch) == 0
    full_batches = list(record_batches)
    record_batches.clear()
    # Stop mid-epoch 2 (12 batches of 8 -> 6 steps per epoch): step 9 is inside the second epoch.
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "cut", env={"MINIMIND_TUI_STOP_AT_STEP": "9"},
                      monkeypatch=monkeypatch) == 0
    assert train_here(tmp_path, "pretrain", "--resume", "cut", monkeypatch=monkeypatch) == 0
    full = {e["step"]: (e["loss"], e["lr"]) for e in steps(tmp_path / "full")}
    cut = {e["step"]: (e["loss"], e["lr"]) for e in steps(tmp_path / "cut")}
    assert sorted(full) == sorted(cut) == list(range(1, 13))
    assert cut == full  # bit-identical on CPU
    assert record_batches == full_batches  # same samples in every batch, same order, across the epoch boundary
    measured["2 resume parity (1 process)"] = (f"stopped at step 9 of 12 (epoch 2), resumed: 12/12 losses and lrs "
                                               f"bit-identical, {len(full_batches)}/{len(full_batches)} batches "
                                               f"with the same samples")


@pytest.mark.slow
def test_two_gloo_processes_resume_equals_uninterrupted(tmp_path, corpus, monkeypatch, measured):
    args = ["--data_path", str(corpus["pretrain"]), *COMMON]
    # Reference: one process with the same global batch (2 x 4), uninterrupted.
    assert train_here(tmp_path, "pretrain", *args, "--batch_size", "8", "--run_dir", "one", "--out_dir", "o1",
                      monkeypatch=monkeypatch) == 0

    def torchrun(*extra, env=None):
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "minimind_tui", "train", "pretrain", *extra]
        return subprocess.run(argv, cwd=tmp_path, env=cli_env(env), capture_output=True, text=True, timeout=300)

    cut = torchrun(*args, "--batch_size", "4", "--run_dir", "two", "--out_dir", "o2",
                   env={"MINIMIND_TUI_STOP_AT_STEP": "4"})
    assert cut.returncode == 0, cut.stdout + cut.stderr
    assert of_kind(tmp_path / "two", "end")[-1]["status"] == "stopped"
    resumed = torchrun("--resume", "two")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    one = {e["step"]: e for e in steps(tmp_path / "one")}
    two = {e["step"]: e for e in steps(tmp_path / "two")}
    assert sorted(one) == sorted(two) == list(range(1, 13))
    worst = 0.0
    for k in one:
        assert two[k]["lr"] == one[k]["lr"] and two[k]["samples"] == one[k]["samples"] == 16
        assert two[k]["loss"] == pytest.approx(one[k]["loss"], abs=1e-5), k
        worst = max(worst, abs(two[k]["loss"] - one[k]["loss"]))
    assert [e["world_size"] for e in of_kind(tmp_path / "two", "start")] == [2, 2]
    assert of_kind(tmp_path / "two", "start")[-1]["resumed_from"] == 4
    measured["2 resume parity (2 Gloo processes)"] = (f"stopped at step 4 of 12, resumed on 2 ranks: 12/12 lrs equal, "
                                                      f"losses within {worst:.1e} of one process")
