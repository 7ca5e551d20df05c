"""`train` for every MiniMind generation: the network, the flags and the files of MiniMind2 and minimind-3.

Hermetic tests use the session's ChatML tokenizers (conftest: gen3-like `chatml_tokenizer`, gen2-like
`chatml2_tokenizer`); the ones that compare with upstream's own files use ../shared and skip without it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from testkit import of_kind, steps, train_here

from minimind_tui.train.args import generation_defaults, parse_flags, resolve
from minimind_tui.train.data import sample_randomness
from minimind_tui.train.memory_plan import config_param_count
from minimind_tui.train.schedule import learning_rate
from model import MiniMindLM, load_minimind, make_config, save_minimind

SMALL = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "4", "--max_seq_len", "64",
         "--batch_size", "4", "--epochs", "1", "--log_interval", "1"]
CONVERSATION = {"conversations": [
    {"role": "user", "content": "上海天气如何？"},
    {"role": "assistant", "content": "", "reasoning_content": "查一下。",
     "tool_calls": [{"name": "get_weather", "arguments": {"city": "上海"}}]},
    {"role": "tool", "content": '{"temp": 21}'},
    {"role": "assistant", "content": "21 度。"}]}


@pytest.fixture
def sft_file(tmp_path) -> Path:
    path = tmp_path / "sft_t2t.jsonl"
    path.write_text("".join(json.dumps(CONVERSATION, ensure_ascii=False) + "\n" for _ in range(16)),
                    encoding="utf-8")
    return path


def run_dir_of(cwd: Path) -> Path:
    (run,) = sorted((cwd / "runs").iterdir())
    return run


def test_a_minimind3_tokenizer_trains_a_minimind3_model_and_out_is_its_format(tmp_path, monkeypatch, sft_file,
                                                                              chatml_tokenizer, capsys):
    """No --generation: the tokenizer's generation decides. out/ holds fp16 weights under minimind-3's key
    names that load back into the same network; the run records the generation."""
    code = train_here(tmp_path, "sft", "--tokenizer", str(chatml_tokenizer.path), "--init", "none",
                      "--data_path", str(sft_file), "--save_dir", "out", *SMALL, monkeypatch=monkeypatch)
    assert code == 0
    assert "minimind-3 (from the tokenizer" in capsys.readouterr().out
    run = run_dir_of(tmp_path)
    assert json.loads((run / "config.json").read_text())["settings"]["generation"] == "gen3"
    assert of_kind(run, "start")[0]["config"]["qk_norm"] is True
    saved = torch.load(tmp_path / "out" / "full_sft_32.pth", weights_only=True)
    assert {v.dtype for v in saved.values()} == {torch.float16}
    assert "model.layers.0.self_attn.q_norm.weight" in saved and "lm_head.weight" in saved
    model = load_minimind(tmp_path / "out" / "full_sft_32.pth", num_attention_heads=4)
    assert model.generation == "gen3"
    ids = torch.tensor([[1, 5, 9, 13]])
    ours = load_minimind(sorted((run / "checkpoints").iterdir())[-1] / "model.pth", num_attention_heads=4)
    assert torch.allclose(model(ids).logits, ours(ids).logits, atol=2e-2)  # fp16 rounding of the same weights


def test_upstream_flags_name_the_files_as_upstream_does(tmp_path, monkeypatch, sft_file, chatml2_tokenizer):
    """--save_weight names out/'s file, --from_weight none starts from random weights, and the MiniMind2
    defaults (lr 1e-6, 2 epochs, random system prompts) apply where no flag is given."""
    code = train_here(tmp_path, "sft", "--tokenizer", str(chatml2_tokenizer.path), "--from_weight", "none",
                      "--save_weight", "my_sft", "--data_path", str(sft_file), "--save_dir", "weights", *SMALL,
                      monkeypatch=monkeypatch)
    assert code == 0
    assert (tmp_path / "weights" / "my_sft_32.pth").is_file()
    settings = json.loads((run_dir_of(tmp_path) / "config.json").read_text())["settings"]
    assert settings["generation"] == "gen2" and settings["init"] == "none"
    assert settings["learning_rate"] == 1e-6 and settings["add_system_ratio"] == 0.2
    assert steps(run_dir_of(tmp_path))[0]["lr"] == pytest.approx(learning_rate(0, 4, 1e-6, 0, "gen2"), rel=1e-2)


def test_from_weight_and_from_resume_continue_where_the_upstream_resume_file_says(tmp_path, monkeypatch, sft_file,
                                                                                  chatml_tokenizer):
    """A first run with --from_resume 0 writes checkpoints/full_sft_32_resume.pth as upstream's lm_checkpoint
    does; a second with --from_resume 1 and one more epoch starts at the second epoch from those weights."""
    common = ["sft", "--tokenizer", str(chatml_tokenizer.path), "--data_path", str(sft_file), "--save_dir", "out",
              "--init", "none", *SMALL]
    assert train_here(tmp_path, *common, "--from_resume", "0", monkeypatch=monkeypatch) == 0
    resume = torch.load(tmp_path / "checkpoints" / "full_sft_32_resume.pth", weights_only=True)
    assert set(resume) == {"model", "optimizer", "epoch", "step", "world_size", "wandb_id", "scaler"}
    assert (resume["epoch"], resume["step"], resume["world_size"]) == (1, 0, 1)
    assert {v.dtype for v in resume["model"].values()} == {torch.float16}
    first = run_dir_of(tmp_path)
    assert train_here(tmp_path, *common, "--from_resume", "1", "--epochs", "2", monkeypatch=monkeypatch) == 0
    second = [r for r in (tmp_path / "runs").iterdir() if r != first][0]
    done = steps(second)
    assert done[0]["step"] == steps(first)[-1]["step"] + 1 and done[-1]["epoch"] == 2
    # The optimizer's moments came along: the first resumed step is not AdamW's first (bias-corrected) step.
    state = torch.load(sorted((second / "checkpoints").iterdir())[-1] / "state.pt", weights_only=True)
    assert int(state["optimizer"]["state"][0]["step"]) == done[-1]["step"]


def test_weights_of_another_generation_are_refused_naming_file_and_flag(tmp_path, monkeypatch, sft_file,
                                                                        chatml2_tokenizer, capsys):
    weights = tmp_path / "pretrain_32.pth"
    save_minimind(MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                         vocab_size=chatml2_tokenizer.vocab_size)), weights)
    code = train_here(tmp_path, "sft", "--generation", "gen2", "--init", str(weights), "--tokenizer",
                      str(chatml2_tokenizer.path), "--data_path", str(sft_file), *SMALL, monkeypatch=monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "pretrain_32.pth" in err[0] and "minimind-3 weights" in err[0] and "--generation gen3" in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_initial_weights_decide_the_generation(tmp_path, monkeypatch, sft_file, chatml_tokenizer):
    """MiniMind2 weights (fp16, the tied matrix under one key) with a minimind-3-style tokenizer: the weights
    win, and every weight is loaded (none left at random)."""
    model = MiniMindLM(make_config("gen2", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   vocab_size=chatml_tokenizer.vocab_size))
    state = {k: v.half() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    torch.save(state, tmp_path / "base.pth")
    code = train_here(tmp_path, "sft", "--init", str(tmp_path / "base.pth"), "--tokenizer",
                      str(chatml_tokenizer.path), "--data_path", str(sft_file), *SMALL, monkeypatch=monkeypatch)
    assert code == 0
    log = (run_dir_of(tmp_path) / "train.log").read_text()
    assert "left at their random init" not in log and "(MiniMind2)" in log


def test_resolve_applies_each_generations_defaults_and_presets():
    assert resolve("sft", {})["max_seq_len"] == 512  # v1 unchanged
    gen3 = resolve("sft", {"generation": "gen3"})
    assert (gen3["dim"], gen3["n_kv_heads"], gen3["max_seq_len"], gen3["learning_rate"]) == (768, 4, 768, 1e-5)
    assert gen3["data_path"].endswith("sft_t2t_mini.jsonl")
    moe = resolve("pretrain", {"preset": "minimind-3-moe"})
    assert moe["generation"] == "gen3" and moe["use_moe"] and moe["dim"] == 768
    flags = parse_flags(["--hidden_size", "640", "--num_hidden_layers", "8", "--use_compile", "1", "--save_dir",
                         "../out", "--generation", "MiniMind2"])
    assert flags == {"dim": 640, "n_layers": 8, "compile": True, "out_dir": "../out", "generation": "gen2"}
    assert generation_defaults("v1", "sft") == {}


def test_sft_draws_follow_the_generation_and_the_seed():
    v1 = sample_randomness(resolve("sft", {}))
    assert not v1.active
    gen3 = sample_randomness(resolve("sft", {"generation": "gen3", "seed": 7}))
    assert (gen3.add_system_ratio, gen3.empty_think_ratio, gen3.seed) == (0.2, 0.2, 7)
    assert gen3.tag() != sample_randomness(resolve("sft", {"generation": "gen3", "seed": 8})).tag()
    assert not sample_randomness(resolve("pretrain", {"generation": "gen3"})).active


def test_learning_rate_follows_the_generations_formula():
    assert learning_rate(0, 100, 1e-3) == pytest.approx(1.1e-3)  # v1: lr/10 + lr/2 (1 + cos), t from 0
    gen2 = [learning_rate(s, 100, 1e-3, 0, "gen2") for s in range(100)]
    assert gen2[0] == pytest.approx(1e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi / 100))))
    assert gen2[-1] == pytest.approx(1e-4) and max(gen2) < 1e-3


@pytest.mark.parametrize("generation, fields", [
    ("v1", dict(dim=64, n_layers=2)), ("v1", dict(dim=64, n_layers=2, use_moe=True)),
    ("gen2", dict(hidden_size=64, num_hidden_layers=2)), ("gen2", dict(hidden_size=64, num_hidden_layers=2,
                                                                         use_moe=True, n_shared_experts=2)),
    ("gen3", dict(hidden_size=64, num_hidden_layers=2)), ("gen3", dict(hidden_size=64, num_hidden_layers=2,
                                                                         use_moe=True)),
    ("gen3", dict(hidden_size=64, num_hidden_layers=2, head_dim=16, tie_word_embeddings=False)),
])
def test_parameter_count_is_exact_for_every_generation(generation, fields):
    config = make_config(generation, **fields)
    assert config_param_count(config) == MiniMindLM(config).num_parameters()


def test_written_weights_match_upstreams_key_lists_and_dtypes(gen, tmp_path, monkeypatch, sft_file):
    """What `train` writes to out/ for MiniMind2 / minimind-3 has exactly the keys, order, shapes and dtype of
    upstream's own out/*.pth of the same config (the reference dense.pth), so its class loads it strict."""
    generation, tokenizer, ref = gen
    io = torch.load(ref / "dense_io.pt", weights_only=True)
    c = io["config"]
    code = train_here(tmp_path, "sft", "--generation", generation, "--tokenizer", str(tokenizer.path),
                      "--init", "none", "--data_path", str(sft_file), "--hidden_size", str(c["hidden_size"]),
                      "--num_hidden_layers", str(c["num_hidden_layers"]), "--num_attention_heads",
                      str(c["num_attention_heads"]), "--num_key_value_heads", str(c["num_key_value_heads"]),
                      "--max_seq_len", "64", "--batch_size", "8", "--save_dir", "out", monkeypatch=monkeypatch)
    assert code == 0
    ours = torch.load(tmp_path / "out" / f"full_sft_{c['hidden_size']}.pth", weights_only=True)
    theirs = torch.load(ref / "dense.pth", weights_only=True)
    assert list(ours) == list(theirs) == list(io["state_dict_keys"])
    assert [(v.shape, v.dtype) for v in ours.values()] == [(v.shape, v.dtype) for v in theirs.values()]


def test_upstream_weights_start_a_run_exactly(gen, tmp_path, monkeypatch, sft_file):
    """Upstream's own dense.pth as --init: its generation is told by its keys and every weight is loaded."""
    generation, tokenizer, ref = gen
    c = torch.load(ref / "dense_io.pt", weights_only=True)["config"]
    code = train_here(tmp_path, "sft", "--init", str(ref / "dense.pth"), "--tokenizer", str(tokenizer.path),
                      "--data_path", str(sft_file), "--num_attention_heads", str(c["num_attention_heads"]),
                      "--num_key_value_heads", str(c["num_key_value_heads"]), "--hidden_size",
                      str(c["hidden_size"]), "--num_hidden_layers", str(c["num_hidden_layers"]),
                      "--max_seq_len", "64", "--batch_size", "16", "--learning_rate", "1e-9", "--shuffle", "0",
                      monkeypatch=monkeypatch)
    assert code == 0
    run = run_dir_of(tmp_path)
    assert json.loads((run / "config.json").read_text())["settings"]["generation"] == generation
    assert "left at their random init" not in (run / "train.log").read_text()
