"""`train lora`, `train dpo`, `train distill`: the stages after SFT, on the CPU with a tiny model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from testkit import TINY, of_kind, steps, train_here

from minimind_tui.demo import demo_tokenizer_dir, sft_lines, write_jsonl
from minimind_tui.train.model_setup import write_sidecar
from model import LMConfig, MiniMindLM, load_minimind
from model.lora import load_lora

CPU = [*TINY, "--device", "cpu", "--batch_size", "8", "--tokenizer", str(demo_tokenizer_dir())]


def pair(question: str, good: str, bad: str) -> dict:
    user = {"role": "user", "content": question}
    return {"chosen": [user, {"role": "assistant", "content": good}],
            "rejected": [user, {"role": "assistant", "content": bad}]}


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with out/full_sft_32.pth (a tiny random model of TINY's shape), SFT and DPO data."""
    (tmp_path / "out").mkdir()
    torch.manual_seed(0)
    from model import Tokenizer

    vocab = Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size
    model = MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=vocab, max_seq_len=48))
    torch.save(model.state_dict(), tmp_path / "out" / "full_sft_32.pth")
    write_sidecar(tmp_path / "out" / "full_sft_32.pth", {"config": model.config.to_dict()})  # its 4 heads
    write_jsonl(tmp_path / "sft.jsonl", sft_lines(32))
    write_jsonl(tmp_path / "dpo.jsonl", [pair(f"What is {a} plus 1?", f"Sure! {a} plus 1 equals {a + 1}.",
                                              f"{a} plus 1 equals {a + 2}.") for a in range(16)])
    return tmp_path


def final_weights(run: Path) -> dict:
    return torch.load(sorted((run / "checkpoints").iterdir())[-1] / "model.pth", weights_only=True)


def only_run(cwd: Path) -> Path:
    (run,) = list((cwd / "runs").iterdir())
    return run


def test_lora_trains_only_the_adapter_and_writes_it_as_v1_does(project, monkeypatch):
    code = train_here(project, "lora", "--data_path", "sft.jsonl", "--lora_name", "me", "--epochs", "2",
                      "--learning_rate", "1e-2", *CPU, monkeypatch=monkeypatch)
    assert code == 0
    adapter = torch.load(project / "out" / "lora" / "me_32.pth", weights_only=True)
    assert adapter and all(".lora." in k for k in adapter) and {v.dtype for v in adapter.values()} == {torch.float32}
    assert next(v for k, v in adapter.items() if k.endswith("lora.A.weight")).shape[0] == 16  # v1's rank
    base = torch.load(project / "out" / "full_sft_32.pth", weights_only=True)
    trained = final_weights(only_run(project))
    assert all(torch.equal(trained[k], v) for k, v in base.items())  # the base weights never moved
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if k.endswith("lora.B.weight"))  # B starts at 0
    # The adapter file on the base weights is the run's model.
    model = load_lora(load_minimind(project / "out" / "full_sft_32.pth", n_heads=4), project / "out" / "lora" /
                      "me_32.pth")
    ids = torch.tensor([[1, 40, 41, 42]])
    run_model = load_minimind(sorted((only_run(project) / "checkpoints").iterdir())[-1] / "model.pth", n_heads=4)
    assert torch.allclose(model(ids).logits, run_model(ids).logits, atol=1e-5)
    losses = [e["loss"] for e in steps(only_run(project))]
    assert losses[-1] < losses[0]


def test_dpo_starts_at_log2_against_its_reference_and_moves_the_margin(project, monkeypatch):
    """At the first step the policy is its reference, so every pair's loss is -log sigmoid(0) = log 2 and the
    rewards are 0; with a large learning rate the chosen replies pull ahead."""
    code = train_here(project, "dpo", "--data_path", "dpo.jsonl", "--epochs", "6", "--learning_rate", "5e-3",
                      *CPU, monkeypatch=monkeypatch)
    assert code == 0
    run = only_run(project)
    done = steps(run)
    assert done[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert done[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert done[-1]["reward_margin"] > 0 and done[-1]["reward_accuracy"] > 0.5 and done[-1]["loss"] < math.log(2)
    assert (project / "out" / "rlhf_32.pth").is_file()  # v1's name for its DPO weights
    assert of_kind(run, "start")[0]["mode"] == "dpo"


def test_dpo_refuses_sft_data_naming_the_kind(project, monkeypatch, capsys):
    code = train_here(project, "dpo", "--data_path", "sft.jsonl", *CPU, monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "holds sft data" in err and "not dpo data" in err


def test_distill_from_an_identical_teacher_has_no_kl_and_alpha_weighs_the_parts(project, monkeypatch):
    code = train_here(project, "distill", "--data_path", "sft.jsonl", "--teacher", "out/full_sft_32.pth",
                      "--alpha", "0.25", "--temperature", "2", "--learning_rate", "1e-3", *CPU,
                      monkeypatch=monkeypatch)
    assert code == 0
    done = steps(only_run(project))
    assert done[0]["distill_loss"] == pytest.approx(0.0, abs=1e-5)  # student == teacher at the start
    for e in done:
        assert e["loss"] == pytest.approx(0.25 * e["ce_loss"] + 0.75 * e["distill_loss"], rel=1e-4, abs=1e-5)
    assert done[-1]["distill_loss"] > 0
    assert (project / "out" / "full_dist_32.pth").is_file()


def test_a_stopped_lora_run_resumes_with_its_adapter(project, monkeypatch):
    """Stopped after step 3 (the fault hook), resumed: the adapters come back from the checkpoint and the
    steps continue from 4."""
    common = ["lora", "--data_path", "sft.jsonl", "--lora_name", "me", "--learning_rate", "1e-2", *CPU]
    code = train_here(project, *common, "--run_dir", "runs/r", env={"MINIMIND_TUI_STOP_AT_STEP": "3"},
                      monkeypatch=monkeypatch)
    assert code == 0 and of_kind(project / "runs" / "r", "end")[-1]["status"] == "stopped"
    assert train_here(project, "lora", "--resume", "runs/r", monkeypatch=monkeypatch) == 0
    done = steps(project / "runs" / "r")
    assert [e["step"] for e in done] == list(range(1, len(done) + 1))
    assert json.loads((project / "runs" / "r" / "config.json").read_text())["settings"]["lora_name"] == "me"


@pytest.mark.parametrize("max_length", [64, 24])
def test_the_trainers_dpo_batches_are_upstreams_dpo_items(gen, max_length, tmp_path):
    """DPOSides in the token cache + PairCollator give, row for row, the reference DPODataset's x / y / mask
    (chosen rows first), and DPOStage's loss on them is objectives.dpo_loss on full logits (a reply cut at
    max_length included: its mask runs into the padding, as upstream's does)."""
    from dataset import DPODataset
    from dataset.batching import Collator, PairCollator
    from dataset.datasets import DPOSides
    from dataset.token_cache import build
    from minimind_tui.train import objectives
    from minimind_tui.train.stages import DPOStage
    from model import make_config

    generation, tok, ref = gen
    pairs = DPODataset(ref / "dpo_cases.jsonl", tok, max_length=max_length)
    cache = build(DPOSides(pairs), tmp_path / "cache", tok.vocab_size, {}, workers=1)
    batch = PairCollator(Collator(cache, pad_id=tok.pad_token_id))(range(len(pairs)))[0]
    items = [pairs[i] for i in range(len(pairs))]
    for key, got in (("x", batch.X), ("y", batch.Y), ("mask", batch.loss_mask)):
        want = torch.cat([torch.stack([it[f"{key}_{side}"] for it in items]) for side in ("chosen", "rejected")])
        width = got.shape[1]  # padded to the batch's longest side only; beyond it upstream has pad id 0 and mask 0
        assert torch.equal(got, want[:, :width]) and not want[:, width:].any()
    torch.manual_seed(0)
    model = MiniMindLM(make_config(generation, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   vocab_size=tok.vocab_size))
    stage = DPOStage({"generation": generation, "beta": objectives.DPO_BETA[generation]})
    stage.after_init(model, "cpu")
    with torch.no_grad():
        model.layers[0].attention.wq.weight.mul_(1.5)  # the policy moves away from its reference
        got = stage.pass_loss(model, batch, 0, 0, 1, "cpu")
        x, y, mask = objectives.concat_pairs({k: torch.stack([it[k] for it in items]) for k in items[0]})
        average = objectives.DPO_AVERAGING[generation]
        policy = objectives.sequence_logprobs(model(x).logits, y, mask, average)
        reference = objectives.sequence_logprobs(stage.reference(x).logits, y, mask, average)
        want = objectives.dpo_loss(*objectives.split_pairs(policy), *objectives.split_pairs(reference),
                                   objectives.DPO_BETA[generation]).loss
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("generation", ["v1", "gen2", "gen3"])
def test_the_memory_plan_counts_what_each_stage_holds(generation):
    from minimind_tui.train.memory_plan import config_param_count, lora_param_count, plan_memory
    from model import make_config
    from model.lora import apply_lora, freeze_all_but_lora

    config = make_config(generation, **({"dim": 64, "n_layers": 2} if generation == "v1" else
                                        {"hidden_size": 64, "num_hidden_layers": 2}))
    adapters = freeze_all_but_lora(apply_lora(MiniMindLM(config)))
    assert lora_param_count(config) == sum(p.numel() for p in adapters)
    plans = {mode: plan_memory(64, 2, 8, 128, config=config, mode=mode, device="cuda", teacher=config)
             for mode in ("sft", "lora", "dpo", "distill")}
    P = config_param_count(config)
    assert plans["lora"].optimizer_gb * 2**30 == lora_param_count(config) * 8  # AdamW for the adapters only
    assert plans["dpo"].frozen_gb * 2**30 == P * 4 and plans["dpo"].batch_size == 16  # both sides of 8 pairs
    assert plans["distill"].frozen_gb * 2**30 == P * 2  # a bf16 teacher
    assert plans["lora"].total_gb < plans["sft"].total_gb < plans["dpo"].total_gb
