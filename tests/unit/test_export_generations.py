"""Export and import of MiniMind2 and minimind-3: Llama, Qwen3, Qwen3-MoE and Qwen2-MoE folders that transformers
loads without trust_remote_code and that come back as the generation's own .pth.

Each export is checked three ways: against upstream's reference logits through a forward pass written here from
the definitions of those transformers classes (no transformers needed), against our model in transformers itself
(skipped without it), and by importing it back (the upstream file again, bit for bit).
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from minimind_tui.cli import main
from minimind_tui.interop.errors import InteropError
from minimind_tui.interop.hf_export import export_hf
from minimind_tui.interop.hf_import import import_hf, settings_to_pass
from minimind_tui.interop.safetensors_io import load_safetensors, save_safetensors
from model import Tokenizer, load_minimind, save_minimind
from model.checkpoint import load_state_dict
from model.config import make_config
from model.model import MiniMindLM

CASES = [("gen2", "dense"), ("gen3", "dense"), ("gen3", "moe"), ("gen2", "moe")]
ARCHITECTURE = {("gen2", "dense"): "LlamaForCausalLM", ("gen3", "dense"): "Qwen3ForCausalLM",
                ("gen3", "moe"): "Qwen3MoeForCausalLM", ("gen2", "moe"): "Qwen2MoeForCausalLM"}


# ------------------------------------------------------- the four transformers classes, from their definitions
def hf_forward(cfg: dict, weights: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """Logits of transformers' Llama / Qwen3 / Qwen3-MoE / Qwen2-MoE for `ids`, eager and in fp32: rotate_half
    RoPE, GQA, q_norm/k_norm over head_dim before RoPE when present, SwiGLU or a softmax top-k MoE."""
    w = {k: v.float() for k, v in weights.items()}
    B, T = ids.shape
    H, KV, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["rms_norm_eps"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H

    def rms(x, g):
        return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rope(x):
        return x * cos + torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), dim=-1) * sin

    angles = torch.outer(torch.arange(T).float(), 1.0 / cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    causal = torch.full((T, T), float("-inf")).triu(1)
    x = w["model.embed_tokens.weight"][ids]
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        if p + "self_attn.q_norm.weight" in w:
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q.transpose(1, 2)), rope(k.transpose(1, 2))
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        att = ((q @ k.transpose(-1, -2)) * hd ** -0.5 + causal).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(B, T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        x = x + mlp(cfg, w, rms(x, w[p + "post_attention_layernorm.weight"]), p + "mlp.")
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rms(x, w["model.norm.weight"]) @ head.T


def swiglu(w, x, p):
    return (F.silu(x @ w[p + "gate_proj.weight"].T) * (x @ w[p + "up_proj.weight"].T)) @ w[p + "down_proj.weight"].T


def mlp(cfg, w, h, p):
    if p + "gate.weight" not in w:
        return swiglu(w, h, p)
    flat = h.reshape(-1, h.shape[-1])
    top, idx = (flat @ w[p + "gate.weight"].T).softmax(-1).topk(cfg["num_experts_per_tok"], dim=-1)
    if cfg["norm_topk_prob"]:
        top = top / top.sum(-1, keepdim=True)
    out = torch.zeros_like(flat)
    for e in range(cfg["num_experts"]):
        rows, slot = (idx == e).nonzero(as_tuple=True)
        out[rows] += swiglu(w, flat[rows], f"{p}experts.{e}.") * top[rows, slot, None]
    if p + "shared_expert_gate.weight" in w:  # Qwen2-MoE
        out += torch.sigmoid(flat @ w[p + "shared_expert_gate.weight"].T) * swiglu(w, flat, p + "shared_expert.")
    return out.view_as(h)


def read_export(out):
    return json.loads((out / "config.json").read_text()), load_safetensors(out / "model.safetensors")[0]


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


# ------------------------------------------------------------------ upstream's reference models (../shared)
@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(c))
def case(request, shared_dir, tmp_path_factory):
    """Upstream's tiny model of one generation and kind, exported with that generation's tokenizer."""
    generation, kind = request.param
    ref, tok = shared_dir / "reference" / generation, shared_dir / "tokenizers" / generation
    if not (ref / f"{kind}.pth").is_file() or not (tok / "tokenizer.json").is_file():
        pytest.skip(f"reference {generation} {kind} model or tokenizer absent")
    out = tmp_path_factory.mktemp(f"{generation}_{kind}") / "hf"
    result = export_hf(ref / f"{kind}.pth", out, tok)
    io = torch.load(ref / f"{kind}_io.pt", weights_only=True)
    return SimpleNamespace(generation=generation, kind=kind, pth=ref / f"{kind}.pth", tok=tok, out=out,
                           result=result, io=io)


def test_export_computes_upstreams_logits(case):
    cfg, weights = read_export(case.out)
    assert cfg["architectures"] == [ARCHITECTURE[case.generation, case.kind]] == [case.result.architecture]
    assert cfg["minimind_generation"] == case.generation
    torch.testing.assert_close(hf_forward(cfg, weights, case.io["input_ids"]), case.io["logits"], atol=1e-4, rtol=0)


def test_minimind2_dense_goes_over_without_a_row_permutation(shared_dir, tmp_path):
    # MiniMind2 already rotates halves (as Llama does) and names its weights as Llama does: nothing moves.
    pth, tok = shared_dir / "reference" / "gen2" / "dense.pth", shared_dir / "tokenizers" / "gen2"
    if not pth.is_file() or not (tok / "tokenizer.json").is_file():
        pytest.skip("reference MiniMind2 model or tokenizer absent")
    export_hf(pth, tmp_path / "hf", tok)
    _, weights = read_export(tmp_path / "hf")
    source = load_state_dict(pth)
    assert set(weights) == set(source) - {"lm_head.weight"}  # tied: implied by tie_word_embeddings
    assert all(torch.equal(weights[k], source[k]) for k in weights)


def test_import_gives_back_upstreams_file_bit_for_bit(case, tmp_path):
    result = import_hf(case.out, tmp_path / "back.pth")
    assert result.config.generation == case.generation
    back, source = load_state_dict(tmp_path / "back.pth"), load_state_dict(case.pth)
    assert list(back) == list(source)  # upstream's key order: its classes load it with strict=True
    assert all(back[k].dtype == torch.float16 and torch.equal(back[k], source[k]) for k in source)
    assert torch.equal(logits(load_minimind(tmp_path / "back.pth"), case.io["input_ids"]),
                       logits(load_minimind(case.pth), case.io["input_ids"]))


def test_the_tokenizer_and_its_chat_template_go_along(case):
    source = json.loads((case.tok / "tokenizer_config.json").read_text(encoding="utf-8"))
    exported = json.loads((case.out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert exported["chat_template"] == source["chat_template"]
    assert (case.out / "tokenizer.json").read_bytes() == (case.tok / "tokenizer.json").read_bytes()
    cfg = json.loads((case.out / "config.json").read_text())
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 0)


def test_transformers_loads_the_export_with_our_logits(case):
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(case.out).float().eval()
    assert type(model).__name__ == ARCHITECTURE[case.generation, case.kind]
    ids = case.io["input_ids"]
    torch.testing.assert_close(logits(model, ids), logits(load_minimind(case.pth), ids), atol=1e-4, rtol=0)
    tok = transformers.AutoTokenizer.from_pretrained(case.out)
    messages = [{"role": "system", "content": "简短回答"}, {"role": "user", "content": "1+1?"}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        Tokenizer.from_dir(case.tok).apply_chat_template(messages, add_generation_prompt=True)


def test_what_transformers_saves_imports_back_unchanged(case, tmp_path):
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(case.out)
    model.save_pretrained(tmp_path / "saved")  # transformers 5 writes rope_parameters instead of rope_theta
    import_hf(tmp_path / "saved", tmp_path / "back.pth")
    back, source = load_state_dict(tmp_path / "back.pth"), load_state_dict(case.pth)
    assert list(back) == list(source) and all(torch.equal(back[k], source[k]) for k in source)


# ----------------------------------------------------------------------- hermetic models (no ../shared needed)
def tiny(generation: str, vocab: int, seed: int = 0, **fields) -> MiniMindLM:
    """A small model of `generation` whose norm gains are not all ones (a mis-mapped norm shows)."""
    torch.manual_seed(seed)
    config = make_config(generation, **{**dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                               num_key_value_heads=2, vocab_size=vocab,
                                               max_position_embeddings=64), **fields})
    model = MiniMindLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    return model


def ids_for(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(5))


def test_minimind3_with_untied_embeddings_and_its_own_head_dim(chatml_tokenizer, tmp_path):
    vocab = chatml_tokenizer.vocab_size
    model = tiny("gen3", vocab, num_attention_heads=4, head_dim=32, tie_word_embeddings=False,
                 rope_theta=5e5)  # q_proj: 64 -> 4 x 32 = 128
    with torch.no_grad():
        model.output.weight.normal_()  # untied: its own matrix
    torch.save(model.state_dict(), tmp_path / "m.pth")
    export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml_tokenizer.path, rope_theta=5e5)
    cfg, weights = read_export(tmp_path / "hf")
    assert (cfg["model_type"], cfg["head_dim"], cfg["tie_word_embeddings"], cfg["rope_theta"]) == \
        ("qwen3", 32, False, 5e5)
    assert "lm_head.weight" in weights and "model.layers.0.self_attn.q_norm.weight" in weights
    torch.testing.assert_close(hf_forward(cfg, weights, ids_for(vocab)), logits(model, ids_for(vocab)),
                               atol=1e-4, rtol=0)
    result = import_hf(tmp_path / "hf", tmp_path / "back.pth")
    assert not result.config.tie_embeddings and result.config.head_dim == 32
    assert "--rope_theta 500000" in settings_to_pass(result.config)
    save_minimind(model, tmp_path / "m16.pth")  # the fp16 file upstream's trainer would write
    assert torch.equal(logits(load_minimind(tmp_path / "back.pth", rope_theta=5e5), ids_for(vocab)),
                       logits(load_minimind(tmp_path / "m16.pth", rope_theta=5e5), ids_for(vocab)))
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").float().eval()
    torch.testing.assert_close(logits(hf, ids_for(vocab)), logits(model, ids_for(vocab)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("top_k", [1, 2])
def test_minimind2_moe_as_qwen2_moe_keeps_its_top_k_rule(chatml2_tokenizer, tmp_path, top_k):
    # MiniMind2 renormalises its top-k weights only when k > 1; its shared expert is ungated.
    vocab = chatml2_tokenizer.vocab_size
    model = tiny("gen2", vocab, use_moe=True, num_experts_per_tok=top_k)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml2_tokenizer.path, num_experts_per_tok=top_k)
    cfg, weights = read_export(tmp_path / "hf")
    assert (cfg["model_type"], cfg["norm_topk_prob"], cfg["num_experts_per_tok"]) == ("qwen2_moe", top_k > 1, top_k)
    assert not weights["model.layers.0.mlp.shared_expert_gate.weight"].any()
    torch.testing.assert_close(hf_forward(cfg, weights, ids_for(vocab)), logits(model, ids_for(vocab)),
                               atol=1e-4, rtol=0)
    import_hf(tmp_path / "hf", tmp_path / "back.pth")
    back = load_state_dict(tmp_path / "back.pth")
    assert all(torch.equal(back[k], v.half()) for k, v in model.state_dict().items())


def test_a_gated_shared_expert_is_refused_on_import(chatml2_tokenizer, tmp_path):
    model = tiny("gen2", chatml2_tokenizer.vocab_size, use_moe=True)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml2_tokenizer.path)
    cfg, weights = read_export(tmp_path / "hf")
    weights["model.layers.1.mlp.shared_expert_gate.weight"] += 0.01  # as training in transformers would leave it
    save_safetensors(weights, tmp_path / "hf" / "model.safetensors")
    with pytest.raises(InteropError, match="shared_expert_gate.*not zero"):
        import_hf(tmp_path / "hf", tmp_path / "back.pth")
    assert not (tmp_path / "back.pth").exists()


def test_experts_fused_as_transformers_5_holds_them_are_split(chatml_tokenizer, tmp_path):
    vocab = chatml_tokenizer.vocab_size
    model = tiny("gen3", vocab, use_moe=True, num_experts_per_tok=2)
    save_minimind(model, tmp_path / "m.pth")
    export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml_tokenizer.path, num_experts_per_tok=2)
    cfg, weights = read_export(tmp_path / "hf")
    fused = {k: v for k, v in weights.items() if ".experts." not in k}
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}.mlp.experts."
        fused[p + "gate_up_proj"] = torch.stack([torch.cat([weights[f"{p}{e}.gate_proj.weight"],
                                                            weights[f"{p}{e}.up_proj.weight"]]) for e in range(4)])
        fused[p + "down_proj"] = torch.stack([weights[f"{p}{e}.down_proj.weight"] for e in range(4)])
    save_safetensors(fused, tmp_path / "hf" / "model.safetensors")
    result = import_hf(tmp_path / "hf", tmp_path / "back.pth")
    assert result.config.num_experts_per_tok == 2 and result.layout == "qwen3_moe"
    back, original = load_state_dict(tmp_path / "back.pth"), load_state_dict(tmp_path / "m.pth")
    assert list(back) == list(original) and all(torch.equal(back[k], original[k]) for k in original)


def test_a_llama_from_minimind2_comes_back_as_minimind2_or_as_v1_on_request(chatml2_tokenizer, tmp_path, capsys):
    vocab = chatml2_tokenizer.vocab_size
    model = tiny("gen2", vocab, num_attention_heads=4)  # not MiniMind2's default of 8: the shapes cannot tell
    save_minimind(model, tmp_path / "full_sft_64.pth")
    assert main(["export", str(tmp_path / "full_sft_64.pth"), "--out", str(tmp_path / "hf"),
                 "--tokenizer", str(chatml2_tokenizer.path), "--num_attention_heads", "4"]) == 0
    assert "MiniMind2" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "back.pth")]) == 0
    assert "--num_attention_heads 4" in capsys.readouterr().out  # what no .pth holds, said once
    back = load_minimind(tmp_path / "back.pth", num_attention_heads=4)
    assert back.generation == "gen2"
    assert torch.equal(logits(back, ids_for(vocab)),
                       logits(load_minimind(tmp_path / "full_sft_64.pth", num_attention_heads=4), ids_for(vocab)))
    assert main(["import", str(tmp_path / "hf"), "--out", str(tmp_path / "v1.pth"), "--generation", "v1"]) == 0
    v1 = load_minimind(tmp_path / "v1.pth", n_heads=4)  # interleaved RoPE rows: the same function
    assert v1.generation == "v1"
    torch.testing.assert_close(logits(v1, ids_for(vocab)), logits(back, ids_for(vocab)), atol=1e-5, rtol=0)


def test_rope_theta_written_as_transformers_5_writes_it(chatml_tokenizer, tiny_tokenizer, tmp_path):
    for generation, tok in (("gen3", chatml_tokenizer), ("v1", tiny_tokenizer)):
        folder = tmp_path / generation
        model = tiny(generation, tok.vocab_size) if generation != "v1" else \
            MiniMindLM(make_config("v1", dim=64, n_layers=1, vocab_size=tok.vocab_size, max_seq_len=64))
        torch.save(model.state_dict(), tmp_path / f"{generation}.pth")
        export_hf(tmp_path / f"{generation}.pth", folder, tok.path, rope_theta=5e5)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg.pop("rope_theta")}
        cfg.pop("rope_scaling")
        (folder / "config.json").write_text(json.dumps(cfg))
        assert import_hf(folder, tmp_path / f"{generation}_back.pth").config.rope_theta == 5e5
        cfg["rope_parameters"]["rope_type"] = "yarn"
        (folder / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(InteropError, match="rope_scaling"):
            import_hf(folder, tmp_path / f"{generation}_yarn.pth")


# ------------------------------------------------------------------------------------ refusals, one line each
def test_minimind2_moe_with_two_shared_experts_is_refused_in_one_line(chatml2_tokenizer, tmp_path, capsys):
    model = tiny("gen2", chatml2_tokenizer.vocab_size, use_moe=True, n_shared_experts=2)
    torch.save(model.state_dict(), tmp_path / "moe.pth")
    assert main(["export", str(tmp_path / "moe.pth"), "--out", str(tmp_path / "hf"),
                 "--tokenizer", str(chatml2_tokenizer.path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "moe.pth") in err and "2 shared experts" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "hf").exists()


def test_a_tokenizer_of_another_vocabulary_is_refused(chatml_tokenizer, chatml2_tokenizer, tmp_path):
    model = tiny("gen3", max(chatml_tokenizer.vocab_size, chatml2_tokenizer.vocab_size))
    torch.save(model.state_dict(), tmp_path / "m.pth")
    with pytest.raises(InteropError, match="MiniMind2 tokenizer.*download tokenizer-3"):
        export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml2_tokenizer.path)


def test_a_tokenizer_without_its_chat_template_is_refused(chatml2_tokenizer, tmp_path):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((chatml2_tokenizer.path / "tokenizer.json").read_bytes())
    config = json.loads((chatml2_tokenizer.path / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    torch.save(tiny("gen2", chatml2_tokenizer.vocab_size).state_dict(), tmp_path / "m.pth")
    with pytest.raises(InteropError, match="tokenizer_config.json: no chat_template"):
        export_hf(tmp_path / "m.pth", tmp_path / "hf", folder)


def test_what_minimind_cannot_compute_is_refused_on_import(chatml_tokenizer, tmp_path):
    model = tiny("gen3", chatml_tokenizer.vocab_size, use_moe=True)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    export_hf(tmp_path / "m.pth", tmp_path / "hf", chatml_tokenizer.path)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    for change, message in (({"decoder_sparse_step": 2}, "every layer of a MiniMind MoE is sparse"),
                            ({"use_sliding_window": True}, "use_sliding_window"),
                            ({"hidden_act": "gelu"}, "SwiGLU")):
        (tmp_path / "hf" / "config.json").write_text(json.dumps({**cfg, **change}))
        with pytest.raises(InteropError, match=message):
            import_hf(tmp_path / "hf", tmp_path / "back.pth")
    (tmp_path / "hf" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InteropError, match="leave out --generation"):
        import_hf(tmp_path / "hf", tmp_path / "back.pth", generation="gen2")


def test_a_minimind3_file_with_a_stray_weight_is_refused(chatml_tokenizer, tmp_path, capsys):
    sd = tiny("gen3", chatml_tokenizer.vocab_size).state_dict()
    sd["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)  # no MiniMind computes it: never dropped silently
    torch.save(sd, tmp_path / "m.pth")
    assert main(["export", str(tmp_path / "m.pth"), "--out", str(tmp_path / "hf"),
                 "--tokenizer", str(chatml_tokenizer.path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'm.pth'}: unexpected weights model.layers.0.self_attn.q_proj.bias" in err
    assert not (tmp_path / "hf").exists()


def test_settings_and_tokenizer_our_trainer_recorded_are_used(chatml2_tokenizer, tmp_path):
    # 4 query heads and top-1 routing: no .pth says either; the trainer's sidecar does.
    from minimind_tui.train.model_setup import write_sidecar

    model = tiny("gen2", chatml2_tokenizer.vocab_size, num_attention_heads=4, use_moe=True, num_experts_per_tok=1)
    save_minimind(model, tmp_path / "pretrain_64_moe.pth")
    write_sidecar(tmp_path / "pretrain_64_moe.pth", {"mode": "pretrain", "config": model.config.to_dict(),
                                                     "tokenizer": str(chatml2_tokenizer.path)})
    result = export_hf(tmp_path / "pretrain_64_moe.pth", tmp_path / "hf")
    cfg, weights = read_export(tmp_path / "hf")
    assert result.tokenizer_dir == chatml2_tokenizer.path
    assert (cfg["num_attention_heads"], cfg["num_experts_per_tok"], cfg["max_position_embeddings"]) == (4, 1, 64)
    ids = ids_for(chatml2_tokenizer.vocab_size)
    ours = load_minimind(tmp_path / "pretrain_64_moe.pth", num_attention_heads=4, num_experts_per_tok=1)
    torch.testing.assert_close(hf_forward(cfg, weights, ids), logits(ours, ids), atol=1e-4, rtol=0)
