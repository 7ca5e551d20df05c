"""Hugging Face Llama-format export and import.

The export is checked against a Llama forward pass written here from the HF Llama definition (rotate_half
RoPE), so the q/k row permutation is verified without transformers; when transformers is installed the
same export is also loaded by LlamaForCausalLM itself.
"""
from __future__ import annotations

import importlib.util
import json
import math
import struct

import pytest
import torch
import torch.nn.functional as F

from minimind_tui.cli import main
from minimind_tui.interop.errors import InteropError
from minimind_tui.interop.hf_export import CHAT_TEMPLATE, export_hf
from minimind_tui.interop.hf_import import import_hf
from minimind_tui.interop.llama_layout import from_hf_state_dict, half_to_interleaved, interleaved_to_half
from minimind_tui.interop.safetensors_io import load_safetensors, save_safetensors
from model.checkpoint import load_model, load_state_dict
from model.config import LMConfig
from model.model import MiniMindLM
from model.tokenizer import render_chat

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
VOCAB = 320


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A tiny byte-level BPE trained here, with MiniMind's special tokens and no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["hello world, a tiny corpus for a tiny tokenizer"] * 50 + ["你好，世界"] * 20,
                            trainer=trainer)
    path = tmp_path_factory.mktemp("tok")
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>"}))
    return path


def tiny_config(**kw) -> LMConfig:
    return LMConfig(**{**dict(dim=64, n_layers=2, n_heads=8, n_kv_heads=2, vocab_size=VOCAB, max_seq_len=64), **kw})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model, checkpoint path) for a seed-0 dense model whose RMSNorm gains are not all ones."""
    torch.manual_seed(0)
    model = MiniMindLM(tiny_config()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)  # so a mis-mapped norm would show in the logits
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def exported(tiny, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "hf"
    export_hf(tiny[1], out, tokenizer_dir, max_seq_len=64)
    return out


# ------------------------------------------------------------------ an independent HF-Llama forward pass
def llama_forward(cfg: dict, w: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """LlamaForCausalLM's computation from its definition: rotate_half RoPE, GQA, SwiGLU, tied lm_head."""
    B, T = ids.shape
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = D // H, cfg["rms_norm_eps"]

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), dim=-1)

    inv_freq = 1.0 / cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)
    angles = torch.outer(torch.arange(T).float(), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    causal = torch.full((T, T), float("-inf")).triu(1)

    x = w["model.embed_tokens.weight"][ids].float()
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd) + causal).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(B, T, D) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        x = x + (F.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"]) @ head.T


def read_export(out):
    return json.loads((out / "config.json").read_text()), load_safetensors(out / "model.safetensors")[0]


# --------------------------------------------------------------------------------------------- the tests
def test_permutation_puts_even_rows_first_per_head_and_inverts():
    w = torch.arange(2 * 4 * 3, dtype=torch.float32).view(8, 3)  # 2 heads of head_dim 4
    half = interleaved_to_half(w, n_heads=2)
    assert half[:, 0].tolist() == [0, 6, 3, 9, 12, 18, 15, 21]  # rows 0,2,1,3 | 4,6,5,7
    assert torch.equal(half_to_interleaved(half, n_heads=2), w)


def test_export_computes_the_same_logits_as_our_model(tiny, exported):
    model, _ = tiny
    cfg, weights = read_export(exported)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids).logits
    theirs = llama_forward(cfg, weights, ids)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_without_the_permutation_the_logits_would_differ(tiny, exported):
    # Guards the test above: it must be able to see a missing q/k permutation.
    model, _ = tiny
    cfg, weights = read_export(exported)
    for name in list(weights):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = cfg["num_attention_heads"] if "q_proj" in name else cfg["num_key_value_heads"]
            weights[name] = half_to_interleaved(weights[name], heads)  # back to MiniMind's row order
    ids = torch.randint(0, VOCAB, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (llama_forward(cfg, weights, ids) - model(ids).logits).abs().max() > 1e-3


def test_export_of_the_reference_model_matches_reference_logits(shared_dir, ref_tokenizer, tmp_path):
    ref = shared_dir / "reference"
    io = torch.load(ref / "minimind_tiny_io.pt", weights_only=True)
    export_hf(ref / "minimind_tiny.pth", tmp_path / "hf", shared_dir / "minimind_tokenizer",
              n_heads=io["config"]["n_heads"], max_seq_len=io["config"]["max_seq_len"])
    cfg, weights = read_export(tmp_path / "hf")
    assert cfg["num_key_value_heads"] == io["config"]["n_kv_heads"]
    with torch.no_grad():
        logits = llama_forward(cfg, weights, io["input_ids"])
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)
    # MiniMind's own template string travels unchanged into the export.
    source = json.loads((shared_dir / "minimind_tokenizer" / "tokenizer_config.json").read_text())
    exported_tc = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert exported_tc["chat_template"] == source["chat_template"]


def test_config_and_side_files(exported, tokenizer_dir):
    cfg, weights = read_export(exported)
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (64, 192, 2)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]) == (8, 2, VOCAB)
    assert cfg["tie_word_embeddings"] is True and cfg["hidden_act"] == "silu"
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 0)
    assert (cfg["rope_theta"], cfg["rms_norm_eps"], cfg["max_position_embeddings"]) == (1e6, 1e-5, 64)
    assert "lm_head.weight" not in weights and len(weights) == 2 + 9 * 2
    gen = json.loads((exported / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (1, 2, 0)
    assert (exported / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()
    tc = json.loads((exported / "tokenizer_config.json").read_text())
    assert tc["chat_template"] == CHAT_TEMPLATE  # the source had none


CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+1?"},
     {"role": "assistant", "content": "2"}, {"role": "user", "content": "2+2?"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_fallback_chat_template_renders_like_our_tokenizer(messages):
    jinja2 = pytest.importorskip("jinja2")
    rendered = jinja2.Environment().from_string(CHAT_TEMPLATE).render(
        messages=messages, bos_token="<s>", eos_token="</s>")
    assert rendered == render_chat(messages)


def test_reload_is_bitwise_equal_for_fp32_and_fp16(tiny, exported, tokenizer_dir, tmp_path):
    model, _ = tiny
    original = model.state_dict()
    _, weights = read_export(exported)
    back = from_hf_state_dict(weights, n_heads=8, n_kv_heads=2)
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)

    half_ckpt = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in original.items()}, half_ckpt)
    export_hf(half_ckpt, tmp_path / "hf16", tokenizer_dir)
    import_hf(tmp_path / "hf16", tmp_path / "back16.pth")
    reloaded = load_state_dict(tmp_path / "back16.pth")
    assert all(reloaded[k].dtype == torch.float16 and torch.equal(reloaded[k], original[k].half())
               for k in original)


def test_cli_export_then_import_gives_a_model_with_the_same_logits(tiny, tokenizer_dir, tmp_path, capsys):
    model, ckpt = tiny
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hf"), "--tokenizer", str(tokenizer_dir)]) == 0
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "back.pth")]) == 0
    assert "imported" in capsys.readouterr().out
    again = load_model(tmp_path / "back.pth")
    ids = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)


def test_settings_recorded_by_the_trainer_are_used(tokenizer_dir, tmp_path):
    # Four query heads cannot be inferred from shapes; the trainer's sidecar records them and the tokenizer.
    from minimind_tui.train.model_setup import write_sidecar

    torch.manual_seed(0)
    config = tiny_config(n_heads=4, n_kv_heads=2)
    model = MiniMindLM(config).eval()
    ckpt = tmp_path / "pretrain_64.pth"
    torch.save(model.state_dict(), ckpt)
    write_sidecar(ckpt, {"mode": "pretrain", "config": config.to_dict(), "tokenizer": str(tokenizer_dir)})
    result = export_hf(ckpt, tmp_path / "hf")
    assert result.tokenizer_dir == tokenizer_dir
    cfg, weights = read_export(tmp_path / "hf")
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (4, 2)
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(llama_forward(cfg, weights, ids), model(ids).logits, atol=1e-4, rtol=0)


def test_existing_export_is_not_overwritten_without_force(tiny, exported, tokenizer_dir):
    with pytest.raises(InteropError, match="--force"):
        export_hf(tiny[1], exported, tokenizer_dir)
    export_hf(tiny[1], exported, tokenizer_dir, max_seq_len=64, force=True)


def test_moe_checkpoint_is_refused_with_an_explanation(tokenizer_dir, tmp_path, capsys):
    torch.manual_seed(0)
    moe = MiniMindLM(tiny_config(use_moe=True))
    torch.save(moe.state_dict(), tmp_path / "moe.pth")
    with pytest.raises(InteropError, match="MoE checkpoints cannot be exported"):
        export_hf(tmp_path / "moe.pth", tmp_path / "out", tokenizer_dir)
    assert main(["export", str(tmp_path / "moe.pth"), "--out", str(tmp_path / "out"),
                 "--tokenizer", str(tokenizer_dir)]) == 2
    err = capsys.readouterr().err
    assert "experts" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_impossible_head_count_is_a_clear_error(tiny, tokenizer_dir, tmp_path):
    with pytest.raises(InteropError, match="n_heads"):
        export_hf(tiny[1], tmp_path / "out", tokenizer_dir, n_heads=3)


def test_missing_tokenizer_is_a_clear_error(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./model/minimind_tokenizer to fall back on
    with pytest.raises(InteropError, match="--tokenizer"):
        export_hf(tiny[1], tmp_path / "out")


def _write_malformed(path, kind: str, good: bytes) -> None:
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "tiny":
        path.write_bytes(b"\x01\x02")
    elif kind == "huge_header":
        path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    elif kind == "not_json":
        path.write_bytes(struct.pack("<Q", 8) + b"not json")
    elif kind == "bad_offsets":
        header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    elif kind == "bad_dtype":
        header = json.dumps({"w": {"dtype": "NOPE", "shape": [2], "data_offsets": [0, 8]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)


@pytest.mark.parametrize("kind", ["truncated", "tiny", "huge_header", "not_json", "bad_offsets", "bad_dtype"])
def test_malformed_safetensors_is_rejected_with_a_clear_error(kind, tmp_path, capsys):
    good = tmp_path / "good.safetensors"
    save_safetensors({"w": torch.ones(64, 64)}, good)
    bad = tmp_path / "hf" / "model.safetensors"
    bad.parent.mkdir()
    _write_malformed(bad, kind, good.read_bytes())
    with pytest.raises(InteropError) as e:
        load_safetensors(bad)
    assert str(bad) in str(e.value) and e.value.user_facing
    (bad.parent / "config.json").write_text("{}")
    assert main(["import", str(bad.parent), "--out", str(tmp_path / "x.pth")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_tied_weights_are_saved_without_shared_storage_errors(tmp_path):
    shared = torch.randn(8, 4)
    save_safetensors({"a": shared, "b": shared, "c": shared[:4]}, tmp_path / "t.safetensors")
    tensors, _ = load_safetensors(tmp_path / "t.safetensors")
    assert torch.equal(tensors["a"], shared) and torch.equal(tensors["c"], shared[:4])


def test_import_refuses_what_minimind_cannot_compute(exported, tmp_path):
    cfg, weights = read_export(exported)
    untied = tmp_path / "untied"
    untied.mkdir()
    (untied / "config.json").write_text(json.dumps(cfg))
    save_safetensors({**weights, "lm_head.weight": torch.randn(VOCAB, 64)}, untied / "model.safetensors")
    with pytest.raises(InteropError, match="ties"):
        import_hf(untied, tmp_path / "a.pth")

    qnorm = tmp_path / "qnorm"
    qnorm.mkdir()
    (qnorm / "config.json").write_text(json.dumps(cfg))
    save_safetensors({**weights, "model.layers.0.self_attn.q_norm.weight": torch.ones(8)},
                     qnorm / "model.safetensors")
    with pytest.raises(InteropError, match="q_norm"):
        import_hf(qnorm, tmp_path / "b.pth")

    scaled = tmp_path / "scaled"
    scaled.mkdir()
    (scaled / "config.json").write_text(json.dumps({**cfg, "rope_scaling": {"type": "yarn", "factor": 4}}))
    (scaled / "model.safetensors").write_bytes((exported / "model.safetensors").read_bytes())
    with pytest.raises(InteropError, match="rope_scaling"):
        import_hf(scaled, tmp_path / "c.pth")


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="optional: transformers is not installed")
def test_transformers_llama_loads_the_export_with_equal_logits(tiny, exported):
    from transformers import AutoTokenizer, LlamaForCausalLM

    model, _ = tiny
    hf = LlamaForCausalLM.from_pretrained(exported, torch_dtype=torch.float32).eval()
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=0)
    tok = AutoTokenizer.from_pretrained(exported)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    if importlib.util.find_spec("jinja2"):  # transformers renders chat templates with jinja2 (not a dependency)
        for messages in CONVERSATIONS:
            assert tok.apply_chat_template(messages, tokenize=False) == render_chat(messages)


def test_import_reads_shards_and_minimind_native_names(tiny, exported, tmp_path):
    model, _ = tiny
    original = model.state_dict()
    cfg, weights = read_export(exported)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text(json.dumps(cfg))
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_safetensors({k: weights[k] for k in keys}, sharded / shard)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: shard for shard, keys in halves.items() for k in keys}}))
    import_hf(sharded, tmp_path / "a.pth")
    assert all(torch.equal(load_state_dict(tmp_path / "a.pth")[k], original[k]) for k in original)

    # MiniMind's own transformers class keeps the native names and its LMConfig fields.
    native = tmp_path / "native"
    native.mkdir()
    (native / "config.json").write_text(json.dumps({**tiny_config().to_dict(), "model_type": "minimind"}))
    save_safetensors({k: v for k, v in original.items() if k != "output.weight"}, native / "model.safetensors")
    result = import_hf(native, tmp_path / "b.pth")
    assert result.layout == "minimind" and result.config.n_kv_heads == 2
    assert all(torch.equal(load_state_dict(tmp_path / "b.pth")[k], original[k]) for k in original)
