"""Two CPU processes with Gloo train exactly like one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from minimind_tui.demo import pretrain_lines, write_jsonl
from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all

ARGS = ["--dim", "32", "--n_layers", "1", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "48",
        "--log_interval", "1", "--accumulation_steps", "2", "--shuffle", "1", "--seed", "3", "--device", "cpu",
        "--learning_rate", "3e-3"]


def _run(cwd, argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_gloo_processes_equal_one_process(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", pretrain_lines(64))
    single = _run(tmp_path, [sys.executable, "-m", "minimind_tui", "train", "pretrain", "--data_path", "p.jsonl",
                             *ARGS, "--batch_size", "8", "--run_dir", "one", "--out_dir", "out1"])
    assert single.returncode == 0, single.stdout + single.stderr
    ddp = _run(tmp_path, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "minimind_tui", "train", "pretrain", "--data_path", "p.jsonl", *ARGS,
                          "--batch_size", "4", "--run_dir", "two", "--out_dir", "out2"])
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr

    def steps(run):
        return [e for e in read_all(tmp_path / run / layout.METRICS) if e["event"] == "step"]

    one, two = steps("one"), steps("two")
    assert len(one) == len(two) == 4
    start = next(e for e in read_all(tmp_path / "two" / layout.METRICS) if e["event"] == "start")
    assert start["world_size"] == 2
    for a, b in zip(one, two, strict=False):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["samples"] == b["samples"] == 16 and a["tokens_per_s"] > 0
    w1 = torch.load(tmp_path / "out1" / "pretrain_32.pth", weights_only=True)
    w2 = torch.load(tmp_path / "out2" / "pretrain_32.pth", weights_only=True)
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=2e-5, rtol=1e-4)
    # Only rank 0 wrote: one start event, one set of checkpoints.
    assert [e["event"] for e in read_all(tmp_path / "two" / layout.METRICS)].count("start") == 1
