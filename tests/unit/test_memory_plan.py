"""The memory plan: its activation formula against what autograd really saves, the passes it assumes against
the trainer's, and `train --dry_run` on a machine without a GPU."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from minimind_tui.cli import main as cli_main
from minimind_tui.train.memory_plan import (
    CPU_LOSS_ROWS,
    CUDA_CHUNK_TOKENS,
    GiB,
    activation_bytes_per_token_layer,
    plan_memory,
)
from model.config import LMConfig


def saved_bytes(model, tokens, low_precision: bool) -> int:
    """Bytes autograd keeps for backward in one forward of the blocks (each storage once, parameters not)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t
    # The CPU's bf16 autocast casts the same operations as CUDA's (matmuls, SDPA) and keeps norms in fp32.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=low_precision)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(tokens, return_logits=False)
    return sum(seen.values())


@pytest.mark.parametrize("use_moe", [False, True], ids=["dense", "moe"])
@pytest.mark.parametrize("low_precision", [False, True], ids=["fp32", "bf16"])
def test_activation_formula_matches_what_autograd_saves(use_moe, low_precision):
    import torch

    from model import MiniMindLM

    dim, layers = 256, 2
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=dim, n_layers=layers, max_seq_len=256, use_moe=use_moe))
    # The growth from 2 x 64 to 2 x 128 tokens is what each token costs; what does not grow (autocast's weight
    # copies, RoPE tables) drops out.
    short, long = (saved_bytes(model, torch.randint(0, 6400, (2, t)), low_precision) for t in (64, 128))
    measured = (long - short) / (2 * 64) / layers
    formula = activation_bytes_per_token_layer(LMConfig(dim=dim, use_moe=use_moe), low_precision)
    assert formula == pytest.approx(measured, rel=0.15), (formula, measured)


def test_the_plan_assumes_the_trainers_passes():
    from minimind_tui.train import loop
    from model.model import LOSS_ROWS

    assert loop.make_collator(None, {}, "cuda:0", 0, False).token_budget == CUDA_CHUNK_TOKENS
    assert LOSS_ROWS == CPU_LOSS_ROWS
    seed = plan_memory(512, 8, 64, 512)
    assert (seed.passes_per_micro_batch, seed.tokens_per_pass, seed.chunk_tokens) == (4, 8192, 8192)
    one_each = plan_memory(512, 8, 64, 512, chunk_tokens=0)
    assert (one_each.passes_per_micro_batch, one_each.tokens_per_pass) == (64, 512)
    whole = plan_memory(512, 8, 64, 512, chunk_tokens=-1)
    assert (whole.passes_per_micro_batch, whole.tokens_per_pass) == (1, 64 * 512)
    # Longer samples than the budget: one sample per pass; shorter ones fill a pass up to the budget.
    assert plan_memory(512, 8, 8, 4096, chunk_tokens=2048).tokens_per_pass == 4096
    cpu = plan_memory(512, 8, 64, 512, device="cpu")  # one packed row, fp32
    assert (cpu.passes_per_micro_batch, cpu.chunk_tokens, cpu.dtype, cpu.casts_gb) == (1, None, "float32", 0)
    assert plan_memory(512, 8, 64, 512, device="cpu", use_moe=True).tokens_per_pass == 512  # MoE: per sample


def test_the_seed_run_needs_3_to_4_gb_and_a_single_padded_pass_far_more():
    seed = plan_memory(512, 8, 64, 512, dtype="bfloat16", vocab=6400)  # MiniMind's tokenizer
    assert 3.0 < seed.total_gb < 4.0
    assert seed.allocated_gb < seed.total_gb
    # The whole batch in one pass (MiniMind pads to one pass; it also projects every position): about 3x.
    assert plan_memory(512, 8, 64, 512, chunk_tokens=-1, vocab=6400).total_gb > 2.5 * seed.total_gb
    # The 104M preset at batch 64 fits a 24 GB card comfortably.
    assert 6 < plan_memory(768, 16, 64, 512, vocab=6400).total_gb < 12


def test_the_terms_move_the_right_way():
    base = plan_memory(512, 8, 64, 512)
    assert plan_memory(512, 8, 64, 512, dtype="float16").total_gb == base.total_gb
    fp32 = plan_memory(512, 8, 64, 512, dtype="float32")
    assert fp32.activations_gb > base.activations_gb and fp32.casts_gb == 0
    ddp = plan_memory(512, 8, 64, 512, world_size=2)
    assert ddp.ddp_gb == pytest.approx(base.weights_gb / 2) and ddp.total_gb > base.total_gb
    assert plan_memory(512, 8, 64, 512, chunk_tokens=16384).activations_gb == pytest.approx(2 * base.activations_gb,
                                                                                             rel=0.01)
    assert plan_memory(640, 8, 64, 512, use_moe=True).activations_gb > plan_memory(640, 8, 64, 512).activations_gb
    # Smaller batches stop shrinking a pass only once the batch is below the budget's 16 samples.
    assert plan_memory(512, 8, 32, 512).total_gb == base.total_gb
    assert plan_memory(512, 8, 8, 512).total_gb < base.total_gb


def test_the_plan_imports_without_torch():
    code = "import sys, minimind_tui.train.memory_plan; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def dry_run_json(capsys, *flags) -> dict:
    assert cli_main(["train", *flags, "--dry_run", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


SEED = ["sft", "--batch_size", "64", "--dim", "512", "--n_layers", "8", "--max_seq_len", "512", "--dtype", "bfloat16"]


def test_dry_run_plans_a_gpu_run_on_a_machine_without_one(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)  # no tokenizer here: the trainer's fallback, the bundled demo tokenizer
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = dry_run_json(capsys, *SEED, "--device", "cuda")
    assert 2.5 <= plan["memory_gb"] <= 5
    assert (plan["device"], plan["dtype"], plan["passes_per_step"], plan["tokens_per_pass"]) == (
        "cuda", "bfloat16", 4, 8192)
    assert plan["params"] > 20e6 and plan["vocab"] > 1000
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()  # nothing trained or written
    # No --device: planned for this machine, the CPU.
    assert dry_run_json(capsys, *SEED)["device"] == "cpu"


def test_dry_run_with_minimind_tokenizer_is_in_range(shared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    plan = dry_run_json(capsys, *SEED, "--device", "cuda", "--tokenizer", str(shared_dir / "minimind_tokenizer"))
    assert plan["vocab"] == 6400 and 2.5 <= plan["memory_gb"] <= 5


def test_dry_run_text_names_the_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["train", *SEED, "--device", "cuda:1", "--accumulation_steps", "2", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "on cuda:1 (bfloat16)" in out and "8 per step" in out and "8192 tokens per pass" in out
    assert "GB per GPU (estimate)" in out and "nothing is trained" in out


def test_dry_run_of_a_resume_plans_the_runs_own_settings(tmp_path, monkeypatch, capsys):
    from minimind_tui.runs import layout

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / layout.CONFIG).write_text(json.dumps({"mode": "sft", "settings": {
        "batch_size": 16, "dim": 256, "n_layers": 4, "max_seq_len": 1024, "init": "none"}}))
    plan = dry_run_json(capsys, "sft", "--resume", str(run), "--device", "cuda")
    assert (plan["batch_size"], plan["dim"], plan["max_seq_len"], plan["tokens_per_pass"]) == (16, 256, 1024, 8192)


def test_large_cards_get_twice_the_tokens_per_pass_in_the_trainer_and_the_plan(monkeypatch):
    from minimind_tui.train import loop

    # Fewer, larger passes on a 40 GB+ card: the trainer's default and the plan must agree on it.
    props = type("Props", (), {"total_memory": 80 * GiB})()
    monkeypatch.setattr(loop.torch.cuda, "get_device_properties", lambda device: props)
    assert loop.chunk_budget({}, "cuda:0") == 16384
    props.total_memory = 24 * GiB
    assert loop.chunk_budget({}, "cuda:0") == CUDA_CHUNK_TOKENS
    assert loop.chunk_budget({"chunk_tokens": 4096}, "cuda:0") == 4096
    small = plan_memory(512, 8, 64, 512, gpu_total_gb=24)
    large = plan_memory(512, 8, 64, 512, gpu_total_gb=80)
    assert (small.tokens_per_pass, large.tokens_per_pass) == (8192, 16384)
    assert large.passes_per_micro_batch * 2 == small.passes_per_micro_batch
    assert large.activations_gb > small.activations_gb
