"""The network of every MiniMind generation: MiniMind2's (gen2) and minimind-3's (gen3) reference models
reproduced through the Python API (load_minimind), their configs, presets, key names, detection, loading
errors, Hugging Face folders and the files we write for them."""
import json

import pytest
import torch

from model import GENERATION_PRESETS, MiniMind2Config, MiniMind3Config, MiniMindLM, load_minimind, make_config, preset
from model.checkpoint import CheckpointError, load_state_dict
from model.generate import decode_step, generate, prefill
from model.generations import minimind_state_dict, save_minimind
from model.key_names import detect_generation, hf_key, v1_key
from model.kv_cache import KVCache

CASES = [("gen2", "dense"), ("gen2", "moe"), ("gen3", "dense"), ("gen3", "moe")]
ATOL = 1e-4


def reference(shared_dir, generation, kind):
    folder = shared_dir / "reference" / generation
    return folder / f"{kind}.pth", torch.load(folder / f"{kind}_io.pt", weights_only=True)


@pytest.fixture(params=CASES, ids=[f"{g}-{k}" for g, k in CASES])
def case(request, shared_dir):
    """(generation, kind, weights path, io, model loaded through the API with the fixture's own config)."""
    generation, kind = request.param
    path, io = reference(shared_dir, generation, kind)
    return generation, kind, path, io, load_minimind(path, **io["config"])


def test_reference_logits_hidden_states_and_loss(case):
    generation, _, _, io, m = case
    assert m.generation == generation and not m.training
    assert next(m.parameters()).dtype == torch.float32
    with torch.no_grad():
        out = m(io["input_ids"])
        torch.testing.assert_close(out.logits, io["logits"], atol=ATOL, rtol=0)
        # Upstream's hidden_states come after the final norm; ours before (v1's last_hidden_state).
        torch.testing.assert_close(m.norm(out.last_hidden_state), io["hidden_states"], atol=ATOL, rtol=0)
        assert out.aux_loss.item() == io["aux_loss_eval"].item() == 0.0
        # Their labels convention: unshifted, -100 not trained; the model shifts.
        loss = m(io["input_ids"], labels=io["labels"]).loss
        assert loss.item() == pytest.approx(io["loss"].item(), abs=ATOL)
        # The trainer's convention gives the same: each position's target, rows where it is not -100.
        targets = io["labels"][:, 1:]
        aligned = m(io["input_ids"][:, :-1], labels=targets, loss_mask=(targets != -100).to(torch.int64)).loss
        assert aligned.item() == pytest.approx(io["loss"].item(), abs=ATOL)


def test_reference_kv_cache_logits_through_our_cache(case):
    """Prefill 20 tokens, then tokens 20..23 one at a time: the KVCache path generate() uses."""
    _, _, _, io, m = case
    ids = io["input_ids"]
    with torch.inference_mode():
        cache = KVCache.for_model(m, ids.shape[0], ids.shape[1])
        steps = [prefill(m, ids[:, :20], cache)]
        steps += [decode_step(m, ids[:, p:p + 1], cache, p) for p in range(20, 24)]
    assert io["kv_cache_positions"] == [19, 20, 21, 22, 23]
    torch.testing.assert_close(torch.stack(steps, dim=1), io["kv_cache_logits"], atol=ATOL, rtol=0)
    # What the cache holds per layer: (batch, positions, KV heads, head_dim), as upstream's.
    assert [list(cache.k[layer, :, :20].shape) for layer in range(m.config.n_layers)] == \
        [shapes[0] for shapes in io["kv_cache_shapes"]]


def test_reference_kv_cache_logits_through_upstreams_list_protocol(case):
    """Code written for MiniMind2 / minimind-3: use_cache=True, then past_key_values without a position."""
    _, _, _, io, m = case
    ids = io["input_ids"]
    with torch.no_grad():
        out = m(ids[:, :20], use_cache=True)
        steps = [out.logits[:, -1]]
        for t in range(20, 24):
            out = m(ids[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True)
            steps.append(out.logits[:, -1])
    torch.testing.assert_close(torch.stack(steps, dim=1), io["kv_cache_logits"], atol=ATOL, rtol=0)


def test_greedy_generation_with_cache_equals_recompute(case):
    """generate()'s decoding (stacked q|k|v weights, rotate-half RoPE, q/k norm on one token) agrees with
    running the whole sequence again for every token."""
    _, _, _, io, m = case
    ids = io["input_ids"][:, :8]
    got = generate(m, ids, max_new_tokens=12, temperature=0, eos_token_id=None)
    expected = ids
    with torch.inference_mode():
        for _ in range(12):
            expected = torch.cat([expected, m(expected).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(got, expected)
    assert torch.equal(m.generate(ids, max_new_tokens=12, temperature=0, eos_token_id=None), expected)


@pytest.mark.parametrize("generation", ["gen2", "gen3"])
def test_reference_left_padded_attention_mask(shared_dir, generation):
    path, io = reference(shared_dir, generation, "dense")
    m = load_minimind(path, **io["config"])
    with torch.no_grad():
        masked = m(io["mask_input_ids"], attention_mask=io["attention_mask"]).logits
        plain = m(io["mask_input_ids"]).logits
    torch.testing.assert_close(masked, io["logits_masked"], atol=ATOL, rtol=0)
    assert (plain[1] - io["logits_masked"][1]).abs().max() > 1e-2  # the padding really is masked


@pytest.mark.parametrize("generation", ["gen2", "gen3"])
def test_reference_yarn_logits(shared_dir, generation):
    path, io = reference(shared_dir, generation, "dense")
    assert io["yarn_config"]["inference_rope_scaling"] and "max_position_embeddings" not in io["yarn_config"]
    m = load_minimind(path, **io["yarn_config"])
    assert m.config.rope_scaling is not None and m.config.max_seq_len == 32768
    with torch.no_grad():
        logits = m(io["input_ids"][:, :8]).logits
    torch.testing.assert_close(logits, io["logits_yarn"], atol=ATOL, rtol=0)
    # Positions up to 2048 cannot need YaRN: upstream leaves the table alone there.
    short = load_minimind(path, **{**io["yarn_config"], "max_position_embeddings": 2048})
    with torch.no_grad():
        torch.testing.assert_close(short(io["input_ids"][:, :8]).logits, io["logits"][:, :8], atol=ATOL, rtol=0)


@pytest.mark.parametrize("generation", ["gen2", "gen3"])
def test_reference_moe_train_mode_aux_loss(shared_dir, generation):
    path, io = reference(shared_dir, generation, "moe")
    m = load_minimind(path, **io["config"]).train()
    out = m(io["input_ids"])
    assert out.aux_loss.item() == pytest.approx(io["aux_loss_train_mode"].item(), rel=1e-5)
    expected = io["logits_train_mode"] if generation == "gen2" else io["logits"]  # gen3: train == eval
    torch.testing.assert_close(out.logits, expected, atol=ATOL, rtol=0)


def test_reference_seeded_init_is_upstreams(case):
    """torch.manual_seed(seed) then building the model draws what upstream's class draws (gen3: its
    N(0, 0.02) post_init, in transformers' order). The fixtures perturbed the norms, so those are skipped."""
    generation, _, path, io, _ = case
    stored = load_state_dict(path)
    torch.manual_seed(io["seed"])
    ours = MiniMindLM(make_config(generation, **io["config"])).state_dict()
    compared = [k for k in stored if not k.endswith("norm.weight")]
    assert compared and all(torch.equal(ours[k].half(), stored[k]) for k in compared)


def test_config_classes_resolve_as_upstream(case):
    generation, _, _, io, m = case
    cls = {"gen2": MiniMind2Config, "gen3": MiniMind3Config}[generation]
    resolved = cls(**io["config"]).to_dict()
    assert {k: resolved[k] for k in resolved if k in io["config_resolved"]} == \
        {k: v for k, v in io["config_resolved"].items() if k in resolved}
    assert cls.from_lm_config(m.config).to_dict() == resolved


def test_reference_parameter_count(case):
    _, _, _, io, m = case
    assert m.num_parameters() == io["num_parameters_unique"]


@pytest.mark.parametrize("name, millions", [
    ("small", 25.830), ("base", 104.031), ("moe", 145.030),
    ("minimind2-small", 25.830), ("minimind2", 104.031), ("minimind2-moe", 145.030),
    ("minimind-3", 63.912), ("minimind-3-moe", 198.417),
])
def test_preset_parameter_counts(name, millions):
    with torch.device("meta"):
        m = MiniMindLM(preset(name))
    assert round(m.num_parameters() / 1e6, 3) == millions


def test_presets_are_each_generations_own():
    assert {g: sorted(p) for g, p in GENERATION_PRESETS.items() if g != "v1"} == {
        "gen2": ["minimind2", "minimind2-moe", "minimind2-small"], "gen3": ["minimind-3", "minimind-3-moe"]}
    c = preset("minimind-3")
    assert (c.generation, c.dim, c.n_kv_heads, c.hidden_dim, c.norm_eps, c.qk_norm) == \
        ("gen3", 768, 4, 2432, 1e-6, True)
    c = preset("minimind-3-moe")
    assert (c.n_routed_experts, c.num_experts_per_tok, c.n_shared_experts, c.moe_router) == (4, 1, 0, "switch")
    c = preset("minimind2-moe")
    assert (c.generation, c.n_shared_experts, c.aux_loss_alpha, c.rope_layout) == ("gen2", 1, 0.01, "half")
    assert preset("small").generation == "v1"


def test_saved_files_are_each_generations_own_format(case, tmp_path):
    """What save_minimind writes is upstream's trainer file: the same keys in the same order, fp16, the
    same values (so their class loads it with strict=True)."""
    _, _, path, io, m = case
    save_minimind(m, tmp_path / "out.pth")
    ours, theirs = torch.load(tmp_path / "out.pth", weights_only=True), load_state_dict(path)
    assert list(ours) == io["state_dict_keys"] == list(theirs)
    assert {k: v.dtype for k, v in ours.items()} == {k: v.dtype for k, v in theirs.items()}
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    again = load_minimind(tmp_path / "out.pth", **io["config"])
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), m.state_dict().values(), strict=True))


def test_v1_saves_fp32_under_v1_names(shared_dir, tmp_path):
    path = shared_dir / "reference" / "minimind_tiny.pth"
    m = load_minimind(path, n_heads=8, max_seq_len=128)
    assert m.generation == "v1"
    save_minimind(m, tmp_path / "v1.pth")
    ours, theirs = torch.load(tmp_path / "v1.pth", weights_only=True), load_state_dict(path)
    assert list(ours) == list(theirs) and all(v.dtype == torch.float32 for v in ours.values())
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_v1_accepts_hugging_face_style_names(shared_dir):
    path = shared_dir / "reference" / "minimind_tiny.pth"
    io = torch.load(shared_dir / "reference" / "minimind_tiny_io.pt", weights_only=True)
    m = load_minimind(path, hidden_size=64, num_hidden_layers=2, num_attention_heads=8, max_position_embeddings=128)
    with torch.no_grad():
        torch.testing.assert_close(m(io["input_ids"]).logits, io["logits"], atol=1e-5, rtol=0)


def test_tied_weight_stored_under_one_key(shared_dir, tmp_path):
    path, io = reference(shared_dir, "gen2", "dense")
    sd = load_state_dict(path)
    del sd["lm_head.weight"]
    torch.save(sd, tmp_path / "one_key.pth")
    m = load_minimind(tmp_path / "one_key.pth", **io["config"])
    with torch.no_grad():
        torch.testing.assert_close(m(io["input_ids"]).logits, io["logits"], atol=ATOL, rtol=0)


def test_untied_minimind3_round_trip(tmp_path):
    torch.manual_seed(0)
    m = MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=1, vocab_size=64,
                               max_position_embeddings=32, tie_word_embeddings=False)).eval()
    assert m.output.weight is not m.tok_embeddings.weight
    save_minimind(m, tmp_path / "untied.pth")
    again = load_minimind(tmp_path / "untied.pth", max_position_embeddings=32)
    assert again.config.tie_embeddings is False
    x = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(again(x).logits, m(x).logits, atol=1e-3, rtol=0)  # fp16 weights


def test_keys_tell_the_generation():
    def keys(generation, use_moe):
        with torch.device("meta"):
            return list(MiniMindLM(make_config(generation, hidden_size=32, num_hidden_layers=1, vocab_size=64,
                                               use_moe=use_moe)).state_dict())
    for generation in ("v1", "gen2", "gen3"):
        for use_moe in (False, True):
            assert detect_generation(keys(generation, use_moe)) == generation
    # minimind-3's MoE without its q_norm keys: still told by the gate before the experts and no shared one.
    gen3_moe = [k for k in keys("gen3", True) if ".q_norm." not in k and ".k_norm." not in k]
    assert detect_generation(gen3_moe) == "gen3"
    assert detect_generation(["encoder.weight"]) is None


def test_key_table_round_trips():
    with torch.device("meta"):
        sd = MiniMindLM(make_config("gen2", hidden_size=32, num_hidden_layers=1, use_moe=True)).state_dict()
    assert "model.layers.0.mlp.shared_experts.0.up_proj.weight" in sd
    for key in sd:
        assert hf_key(v1_key(key)) == key
    assert hf_key("layers.3.attention.wq.weight") == "model.layers.3.self_attn.q_proj.weight"
    assert hf_key("output.weight") == "lm_head.weight"


@pytest.mark.parametrize("given, message", [
    (dict(hidden_size=768), r"minimind-3 checkpoint .* has hidden_size 64, but hidden_size=768 .* fix --hidden_size"),
    (dict(num_attention_heads=4), r"minimind-3 checkpoint .* has num_attention_heads 8, .*--num_attention_heads"),
    (dict(head_dim=16), r"has head_dim 8, but head_dim=16 was given; fix --head_dim"),
    (dict(use_moe=1), r"has use_moe False, but use_moe=1 was given; fix --use_moe"),
    (dict(n_routed_experts=4), r"no setting 'n_routed_experts'; minimind-3 calls it num_experts \(--num_experts\)"),
    (dict(dim=64), r"no setting 'dim'; minimind-3 calls it hidden_size"),
])
def test_settings_the_weights_contradict_are_one_line_errors(shared_dir, given, message):
    path, _ = reference(shared_dir, "gen3", "dense")
    with pytest.raises(CheckpointError, match=message) as caught:
        load_minimind(path, **given)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert caught.value.user_facing


def test_minimind2_heads_that_cannot_fit_name_the_flag(shared_dir):
    path, _ = reference(shared_dir, "gen2", "dense")
    with pytest.raises(CheckpointError, match=r"MiniMind2 .* not fit num_attention_heads=3; .*--num_attention_heads"):
        load_minimind(path, num_attention_heads=3)
    with pytest.raises(CheckpointError, match=r"heads 2, but num_key_value_heads=4 .*--num_key_value_heads"):
        load_minimind(path, num_key_value_heads=4)


def hf_folder(tmp_path, shared_dir, generation, weights="safetensors"):
    """A Hugging Face folder as transformers saves MiniMind: config.json, the weights without the tied
    lm_head duplicate, and the model's own code (which must never run)."""
    from safetensors.torch import save_file

    path, io = reference(shared_dir, generation, "dense")
    folder = tmp_path / generation
    folder.mkdir()
    config = {"architectures": ["MiniMindForCausalLM"], "auto_map": {"AutoModelForCausalLM": "model_minimind.X"},
              "model_type": "minimind", "torch_dtype": "float16", "transformers_version": "4.57.6",
              "rope_scaling": None, **io["config_resolved"], "intermediate_size": None}  # null: the default
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "model_minimind.py").write_text("raise SystemExit('remote code ran')\n", encoding="utf-8")
    sd = {k: v for k, v in load_state_dict(path).items() if k != "lm_head.weight"}
    if weights == "safetensors":
        save_file(sd, str(folder / "model.safetensors"))
    else:
        torch.save(sd, folder / "pytorch_model.bin")
    return folder, io


@pytest.mark.parametrize("generation, weights", [("gen2", "safetensors"), ("gen3", "safetensors"), ("gen3", "bin")])
def test_hugging_face_folder_loads_with_the_same_call(tmp_path, shared_dir, generation, weights):
    folder, io = hf_folder(tmp_path, shared_dir, generation, weights)
    m = load_minimind(folder)  # sizes, heads and max positions from config.json
    assert m.generation == generation and m.config.max_seq_len == 128
    with torch.no_grad():
        torch.testing.assert_close(m(io["input_ids"]).logits, io["logits"], atol=ATOL, rtol=0)


def test_a_folder_of_another_model_type_is_refused(tmp_path, shared_dir):
    folder, _ = hf_folder(tmp_path, shared_dir, "gen2")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="model_type is 'llama', not 'minimind'"):
        load_minimind(folder)


def test_minimind3_packed_row_equals_separate_samples():
    """Packed training rows restart RoPE per sample in the rotate-half layout too."""
    torch.manual_seed(0)
    m = MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=2, vocab_size=64,
                               max_position_embeddings=64)).eval()
    a, b = torch.randint(0, 64, (1, 5)), torch.randint(0, 64, (1, 7))
    positions = torch.cat([torch.arange(5), torch.arange(7)])
    with torch.no_grad():
        packed = m(torch.cat([a, b], dim=1), positions=positions, spans=[(0, 5), (5, 12)]).logits
        separate = torch.cat([m(a).logits, m(b).logits], dim=1)
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=0)


def test_minimind3_state_dict_is_upstreams_and_loads_both_namings():
    with torch.device("meta"):
        m = MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=1, use_moe=True))
    keys = list(m.state_dict())
    assert keys[:10] == ["model.embed_tokens.weight"] + [f"model.layers.0.self_attn.{p}.weight" for p in (
        "q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")] + [
        "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.mlp.gate.weight"]
    assert keys[-2:] == ["model.norm.weight", "lm_head.weight"]
    fresh = MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=1, use_moe=True))
    v1_named = {v1_key(k): v for k, v in fresh.state_dict().items()}
    fresh.load_state_dict(v1_named, strict=True)  # the modules' own names are accepted too


def test_minimind_state_dict_unwraps_a_compiled_or_ddp_model():
    m = MiniMindLM(make_config("gen2", hidden_size=32, num_hidden_layers=1, vocab_size=64))

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    sd = minimind_state_dict(Wrapper(m))
    assert next(iter(sd)) == "model.embed_tokens.weight" and all(v.dtype == torch.float16 for v in sd.values())


@pytest.mark.parametrize("generation", ["gen2", "gen3"])
def test_trains_under_bf16_autocast_with_padding(generation):
    """The low-precision path (RMSNorm's cast order, q/k norm, rotate-half RoPE, the padding bias cast to
    the attention's dtype, the MoE router) runs forward and backward and gives a finite loss."""
    torch.manual_seed(0)
    m = MiniMindLM(make_config(generation, hidden_size=32, num_hidden_layers=1, vocab_size=64,
                               max_position_embeddings=32, use_moe=True)).train()
    ids = torch.randint(1, 64, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    labels = ids.masked_fill(mask == 0, -100)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(ids, labels=labels, attention_mask=mask)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.aux_loss > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
