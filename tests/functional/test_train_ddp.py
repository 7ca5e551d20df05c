"""Two CPU processes with Gloo train exactly like one process with the same global batch."""
from __future__ import annotations

import pytest
import torch
from testkit import of_kind, run_cli, steps

from minimind_tui.demo import pretrain_lines, write_jsonl

ARGS = ["--dim", "32", "--n_layers", "1", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "48",
        "--log_interval", "1", "--accumulation_steps", "2", "--shuffle", "1", "--seed", "3", "--device", "cpu",
        "--learning_rate", "3e-3"]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", pretrain_lines(64))
    single = run_cli(tmp_path, "train", "pretrain", "--data_path", "p.jsonl", *ARGS, "--batch_size", "8",
                     "--run_dir", "one", "--out_dir", "out1")
    assert single.returncode == 0, single.stdout + single.stderr
    ddp = run_cli(tmp_path, "--standalone", "--nproc_per_node", "2", "-m", "minimind_tui", "train", "pretrain",
                  "--data_path", "p.jsonl", *ARGS, "--batch_size", "4", "--run_dir", "two", "--out_dir", "out2",
                  module="torch.distributed.run")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    one, two = steps(tmp_path / "one"), steps(tmp_path / "two")
    assert len(one) == len(two) == 4
    starts = of_kind(tmp_path / "two", "start")
    assert [e["world_size"] for e in starts] == [2]  # only rank 0 writes events: one start
    for a, b in zip(one, two, strict=False):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["samples"] == b["samples"] == 16 and a["tokens_per_s"] > 0
    w1 = torch.load(tmp_path / "out1" / "pretrain_32.pth", weights_only=True)
    w2 = torch.load(tmp_path / "out2" / "pretrain_32.pth", weights_only=True)
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=2e-5, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dpo", "lora"])
def test_the_stages_after_sft_under_two_gloo_processes_equal_one_process(tmp_path, mode):
    """DPO (its reference model beside the DDP-wrapped policy) and LoRA (frozen base weights, which DDP must
    leave out) train on 2 processes exactly as on one with the same global batch."""
    from minimind_tui.demo import sft_lines
    from model import LMConfig, MiniMindLM

    torch.manual_seed(0)
    base = MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=1643, max_seq_len=48))
    (tmp_path / "base").mkdir()
    torch.save(base.state_dict(), tmp_path / "base" / "full_sft_32.pth")
    user = {"role": "user", "content": "What is 3 plus 4?"}
    pairs = [{"chosen": [user, {"role": "assistant", "content": f"3 + 4 = 7 {i}"}],
              "rejected": [user, {"role": "assistant", "content": f"3 plus 4 equals {i}."}]} for i in range(32)]
    write_jsonl(tmp_path / "d.jsonl", pairs if mode == "dpo" else sft_lines(32))
    common = ["--data_path", "d.jsonl", "--init", "base/full_sft_32.pth", "--epochs", "4", *ARGS]
    single = run_cli(tmp_path, "train", mode, *common, "--batch_size", "8", "--run_dir", "one", "--out_dir", "o1")
    assert single.returncode == 0, single.stdout + single.stderr
    ddp = run_cli(tmp_path, "--standalone", "--nproc_per_node", "2", "-m", "minimind_tui", "train", mode, *common,
                  "--batch_size", "4", "--run_dir", "two", "--out_dir", "o2", module="torch.distributed.run")
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    one, two = steps(tmp_path / "one"), steps(tmp_path / "two")
    assert len(one) == len(two) >= 2
    for a, b in zip(one, two, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        if mode == "dpo":
            assert a["reward_margin"] == pytest.approx(b["reward_margin"], abs=1e-5)
