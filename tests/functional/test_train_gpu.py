"""The CUDA paths (autocast, GradScaler for fp16, fused AdamW, pinned batches). Skipped without a GPU."""
from __future__ import annotations

import pytest

from minimind_tui.cli import main as cli_main
from minimind_tui.demo import pretrain_lines, write_jsonl
from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cuda_training_runs_and_reports_memory(tmp_path, monkeypatch, dtype):
    write_jsonl(tmp_path / "p.jsonl", pretrain_lines(64))
    monkeypatch.chdir(tmp_path)
    code = cli_main(["train", "pretrain", "--data_path", "p.jsonl", "--dim", "64", "--n_layers", "2",
                     "--max_seq_len", "64", "--batch_size", "16", "--accumulation_steps", "1", "--learning_rate",
                     "3e-3", "--device", "cuda:0", "--dtype", dtype, "--run_dir", "r"])
    assert code == 0
    steps = [e for e in read_all(tmp_path / "r" / layout.METRICS) if e["event"] == "step"]
    assert steps[-1]["loss"] < steps[0]["loss"] and steps[-1]["mem_peak_gb"] > 0
