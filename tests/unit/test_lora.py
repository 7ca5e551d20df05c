"""MiniMind's LoRA (model/lora.py): upstream adapter files of MiniMind2 and minimind-3 reproduce their reference
logits (plain, through the KV cache, merged), the files we save are upstream's format, and the adapter works in
every decoding path, for every generation."""
import copy

import pytest
import torch
from testkit import with_random_adapter

from model import MiniMindLM, apply_lora, load_lora, load_minimind, make_config, merge_lora, save_lora
from model.generate import decode_step, generate, prefill
from model.generations import minimind_state_dict, save_minimind
from model.int8 import Int8Weights, StackedWeights, available
from model.kv_cache import KVCache
from model.lora import (
    LORA_RANK,
    LoRAError,
    LoRALinear,
    adapted_layers,
    adapter_generation,
    eval_lora_path,
    find_lora_weights,
    freeze_all_but_lora,
    lora_rank,
    lora_state_dict,
    lora_targets,
    lora_weights_path,
    remove_lora,
)

ATOL = 1e-4
# minimind-3's merged file holds fp16(W) + fp16(B @ A): its logits differ from base + adapter by up to 2.3e-4
# (the fixture's README; 1.0e-3 on MiniMind2's fixture, whose logits are four times larger). Ours hold the same
# fp16 values bit for bit, so they match upstream's merged logits to the usual 1e-4, and base + adapter to
# that rounding: MERGE_ROUNDING times the logits' standard deviation (6e-4 and 2.4e-3 on the fixtures).
MERGE_ROUNDING = 4e-3


@pytest.fixture(params=["gen2", "gen3"])
def ref(request, shared_dir):
    """(generation, base model from dense.pth, the adapter file, lora_io.pt)."""
    folder = shared_dir / "reference" / request.param
    io = torch.load(folder / "lora_io.pt", weights_only=True)
    return request.param, load_minimind(folder / "dense.pth", **io["base_config"]), folder / "lora.pth", io


def tiny(generation: str, seed: int = 0, **fields) -> MiniMindLM:
    torch.manual_seed(seed)
    sizes = dict(dim=32, n_layers=2, vocab_size=64, max_seq_len=64) if generation == "v1" else \
        dict(hidden_size=32, num_hidden_layers=2, vocab_size=64, max_position_embeddings=64)
    return MiniMindLM(make_config(generation, **{**sizes, **fields})).eval()


# ---- the reference cases -----------------------------------------------------------------------------------
def test_reference_adapter_gives_upstreams_logits(ref):
    generation, m, path, io = ref
    with torch.no_grad():
        base = m(io["input_ids"]).logits
    assert load_lora(m, path) is m
    assert [name for name, _ in lora_targets(m)] == [n.replace("model.", "").replace("self_attn", "attention")
                                                     .replace("q_proj", "wq").replace("o_proj", "wo")
                                                     for n in io["lora_targets"]]
    with torch.no_grad():
        logits = m(io["input_ids"]).logits
    torch.testing.assert_close(logits, io["logits_lora"], atol=ATOL, rtol=0)
    assert (logits - base).abs().max() > 0.05  # the adapter matters at this tolerance
    assert all(p.dtype == torch.float32 for p in m.parameters())  # fp16 files go into fp32 adapters, as upstream


def test_reference_adapter_through_the_kv_cache(ref):
    """Prefill 20 tokens, then 20..23 one at a time, through the decoding path generate() takes on a CPU
    (stacked projections, which must leave an adapted projection to itself) and upstream's list protocol."""
    _, m, path, io = ref
    load_lora(m, path)
    ids = io["input_ids"]
    with torch.inference_mode():
        cache = KVCache.for_model(m, ids.shape[0], ids.shape[1])
        steps = [prefill(m, ids[:, :20], cache)]
        steps += [decode_step(m, ids[:, p:p + 1], cache, p, StackedWeights.for_model(m)) for p in range(20, 24)]
        out = m(ids[:, :23], use_cache=True)
        listed = m(ids[:, 23:24], past_key_values=out.past_key_values, use_cache=True).logits[:, -1]
    torch.testing.assert_close(steps[-1], io["kv_cache_last_logits_lora"], atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.stack(steps, dim=1), io["logits_lora"][:, 19:24], atol=ATOL, rtol=0)
    torch.testing.assert_close(listed, io["kv_cache_last_logits_lora"], atol=ATOL, rtol=0)


def test_reference_seeded_init_is_upstreams(ref):
    """upstream built the file as manual_seed(lora_seed); apply_lora(model); then overwrote B: its A matrices
    are upstream's initial ones, and a seeded apply_lora draws them again."""
    generation, m, path, io = ref
    torch.manual_seed(io["lora_seed"])
    apply_lora(m)
    reference = torch.load(path, weights_only=True)
    ours = lora_state_dict(m)
    assert lora_rank(ours) == io["lora_rank"] == LORA_RANK[generation]
    for key, value in reference.items():
        if key.endswith(".A.weight"):
            torch.testing.assert_close(ours[key], value, atol=0, rtol=0)
        else:
            assert not ours[key].any()  # B starts at zero: a fresh adapter changes nothing


def test_saved_adapter_is_upstreams_file(ref, tmp_path):
    """What upstream's load_lora reads: the same keys in the same order, dtypes and shapes, and the values
    come back bit for bit (minimind-3's fp16 through our fp32 adapter and back)."""
    generation, m, path, io = ref
    load_lora(m, path)
    save_lora(m, tmp_path / "ours.pth")
    ours = torch.load(tmp_path / "ours.pth", weights_only=True)
    reference = torch.load(path, weights_only=True)
    assert list(ours) == list(reference) == io["lora_keys"]
    assert [(v.dtype, v.shape) for v in ours.values()] == [(v.dtype, v.shape) for v in reference.values()]
    assert {str(v.dtype) for v in ours.values()} == set(io["lora_dtypes"])
    assert all(torch.equal(ours[k], reference[k]) for k in reference)
    assert adapter_generation(ours) == generation


def test_reference_merge_is_minimind3s(ref, tmp_path):
    """minimind-3's merge_lora: the merged weights are fp16(W) + fp16(B @ A), bit for bit; the file we write is
    its merged file (keys, all fp16); its logits are upstream's merged logits. MiniMind2 (no merge of its
    own) merges by the same rule into its fp16 files."""
    generation, m, path, io = ref
    load_lora(m, path)
    with torch.no_grad():
        unmerged = m(io["input_ids"]).logits
    expected = {}
    for name, layer in lora_targets(m):
        w, delta = layer.weight.detach().half(), (layer.lora.B.weight @ layer.lora.A.weight).detach().half()
        expected[name] = w + delta
    assert merge_lora(m) is m
    assert not any(isinstance(layer, LoRALinear) for layer in m.modules())
    assert not any(".lora." in k for k in m.state_dict())
    with torch.no_grad():
        merged = m(io["input_ids"]).logits
    for name, layer in lora_targets(m):
        assert torch.equal(layer.weight.half(), expected[name])
    torch.testing.assert_close(merged, unmerged, atol=MERGE_ROUNDING * unmerged.std().item(), rtol=0)
    save_minimind(m, tmp_path / "merged.pth")
    written = torch.load(tmp_path / "merged.pth", weights_only=True)
    assert all(v.dtype == torch.float16 for v in written.values())
    if generation == "gen3":
        assert list(written) == io["merged_state_dict_keys"]
        for key, value in io["merged_target_weights"].items():
            assert torch.equal(written[key], value), key
        torch.testing.assert_close(merged, io["logits_merged"], atol=ATOL, rtol=0)
        # and the file loads back as a plain minimind-3 model with the same logits
        again = load_minimind(tmp_path / "merged.pth", **io["base_config"])
        with torch.no_grad():
            torch.testing.assert_close(again(io["input_ids"]).logits, io["logits_merged"], atol=ATOL, rtol=0)


def test_an_upstream_file_is_refused_on_a_model_it_does_not_fit(ref):
    _, _, path, _ = ref
    wider = tiny("gen3", hidden_size=64, num_hidden_layers=3)  # a layer the file lacks
    with pytest.raises(LoRAError, match="has no adapter for layers.2"):
        load_lora(wider, path)
    with pytest.raises(LoRAError, match="cannot go on this MiniMind v1 model"):
        load_lora(tiny("v1"), path)


# ---- every generation, hermetic ----------------------------------------------------------------------------
@pytest.mark.parametrize("generation", ["v1", "gen2", "gen3"])
def test_targets_rank_and_a_fresh_adapter_changes_nothing(generation):
    m = tiny(generation)
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        base = m(ids).logits
    apply_lora(m)
    assert [name for name, _ in lora_targets(m)] == [f"layers.{i}.attention.{p}" for i in range(2)
                                                     for p in ("wq", "wo")]
    assert all(layer.lora.rank == LORA_RANK[generation] for _, layer in lora_targets(m))
    with torch.no_grad():
        assert torch.equal(m(ids).logits, base)


@pytest.mark.parametrize("generation,prefix,dtype", [
    ("v1", "layers.0.attention.wq", torch.float32),
    ("gen2", "model.layers.0.self_attn.q_proj", torch.float32),
    ("gen3", "model.layers.0.self_attn.q_proj", torch.float16)])
def test_each_generation_saves_its_own_file_and_loads_it_back(generation, prefix, dtype, tmp_path):
    m = with_random_adapter(tiny(generation))
    ids = torch.randint(0, 64, (2, 9))
    path = tmp_path / "a.pth"
    save_lora(m, path)
    saved = torch.load(path, weights_only=True)
    assert list(saved)[:2] == [f"{prefix}.lora.A.weight", f"{prefix}.lora.B.weight"] and len(saved) == 8
    assert {v.dtype for v in saved.values()} == {dtype}
    assert adapter_generation(saved) == generation and lora_rank(saved) == LORA_RANK[generation]
    fresh = tiny(generation)
    load_lora(fresh, path)
    with torch.no_grad():
        expected = m(ids).logits if dtype == torch.float32 else None
        if expected is None:  # minimind-3 saved fp16: compare with the adapter rounded the same way
            for (_, a), (_, b) in zip(lora_targets(m), lora_targets(fresh), strict=True):
                assert torch.equal(a.lora.A.weight.half().float(), b.lora.A.weight)
            expected = m(ids).logits
        torch.testing.assert_close(fresh(ids).logits, expected, atol=1e-3 if dtype == torch.float16 else 0,
                                   rtol=0)


@pytest.mark.parametrize("generation", ["v1", "gen2", "gen3"])
def test_generation_with_an_adapter_equals_recomputing_every_step(generation):
    """The cached decoding (stacked projections; an adapted one applies itself) gives the tokens a full
    forward per step gives."""
    m = with_random_adapter(tiny(generation))
    prompt = torch.randint(3, 64, (1, 5))
    out = generate(m, prompt, max_new_tokens=12, temperature=0, eos_token_id=None)
    ids = prompt
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, m(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)
    plain = generate(remove_lora(m), prompt, max_new_tokens=12, temperature=0, eos_token_id=None)
    assert not torch.equal(plain, out)  # the adapter was really in the decoding above


@pytest.mark.skipif(not available("cpu"), reason="no int8 kernel in this PyTorch")
def test_int8_decoding_keeps_the_adapter():
    m = with_random_adapter(tiny("gen2"))
    ids = torch.randint(0, 64, (1, 6))
    with torch.inference_mode():
        exact = m(ids).logits[:, -1]
        cache = KVCache.for_model(m, 1, 8)
        prefill(m, ids[:, :5], cache)
        approx = decode_step(m, ids[:, 5:6], cache, 5, Int8Weights.for_model(m))
        base = remove_lora(copy.deepcopy(m))(ids).logits[:, -1]
    assert (approx - exact).abs().max() < 0.25 * (exact - base).abs().max()


def test_adapter_survives_deepcopy_and_trains_alone():
    """DPO's reference model is a deepcopy; LoRA training updates the adapters only (MiniMind's train_lora)."""
    m = with_random_adapter(tiny("gen3")).train()
    twin = copy.deepcopy(m)
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(twin(ids).logits, m(ids).logits, atol=0, rtol=0)
    params = freeze_all_but_lora(m)
    assert len(params) == 8 and sum(p.requires_grad for p in m.parameters()) == 8
    before = {k: v.clone() for k, v in m.state_dict().items()}
    optimizer = torch.optim.SGD(params, lr=0.1)
    m(ids, labels=ids).loss.backward()
    optimizer.step()
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".lora." in k for k in changed)


def test_full_weights_leave_the_adapter_out(tmp_path):
    m = with_random_adapter(tiny("gen2"))
    assert any(".lora." in k for k in m.state_dict())
    assert not any(".lora." in k for k in minimind_state_dict(m))


def test_v1_merges_in_fp32():
    m = with_random_adapter(tiny("v1"))
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        unmerged = m(ids).logits
        merge_lora(m)
        torch.testing.assert_close(m(ids).logits, unmerged, atol=1e-5, rtol=0)
    assert type(m.layers[0].attention.wq) is torch.nn.Linear


def test_files_that_are_no_adapter_for_this_model_are_one_line_errors(tmp_path):
    m = tiny("gen2")
    weights = tmp_path / "full.pth"
    save_minimind(m, weights)
    with pytest.raises(LoRAError, match="not a LoRA adapter file.*a full model's weights"):
        load_lora(m, weights)
    v1_adapter = tmp_path / "v1.pth"
    save_lora(with_random_adapter(tiny("v1")), v1_adapter)
    with pytest.raises(LoRAError, match="a MiniMind v1 LoRA file cannot go on this MiniMind2 model"):
        load_lora(m, v1_adapter)
    narrow = tmp_path / "narrow.pth"
    save_lora(with_random_adapter(tiny("gen2", hidden_size=16, num_attention_heads=4, num_key_value_heads=2)),
              narrow)
    with pytest.raises(LoRAError, match="does not fit a layer of 32 -> 32"):
        load_lora(m, narrow)
    with pytest.raises(LoRAError, match="no square linear layer"):
        apply_lora(tiny("gen3", head_dim=8, num_attention_heads=2, num_key_value_heads=1))


def test_adapter_file_paths_are_each_generations():
    assert str(lora_weights_path("v1", "out", "lora_identity", 512)) == "out/lora/lora_identity_512.pth"
    assert str(lora_weights_path("gen2", "../out/lora", "lora_identity", 512, True)) == \
        "../out/lora/lora_identity_512.pth"
    assert str(lora_weights_path("gen3", "../out", "lora_medical", 768, True)) == "../out/lora_medical_768_moe.pth"
    assert str(eval_lora_path("gen2", "out", "lora_identity", 512)) == "out/lora/lora_identity_512.pth"
    assert str(eval_lora_path("gen3", "out", "lora_medical", 768)) == "out/lora_medical_768.pth"
    assert str(eval_lora_path("v1", "out", "lora_identity", 512)) == "out/lora/lora_identity_512.pth"


def test_an_adapter_name_is_found_beside_the_weights(tmp_path):
    (tmp_path / "lora").mkdir()
    gen2 = tmp_path / "lora" / "lora_identity_32.pth"
    gen2.write_bytes(b"x")
    assert find_lora_weights("lora_identity", tmp_path, "gen2", 32) == gen2
    moe = tmp_path / "lora_medical_32_moe.pth"  # minimind-3's trainer adds _moe, its eval script does not
    moe.write_bytes(b"x")
    assert find_lora_weights("lora_medical", tmp_path, "gen3", 32, use_moe=True) == moe
    assert find_lora_weights(str(gen2), tmp_path / "elsewhere", "gen3", 99) == gen2
    with pytest.raises(LoRAError, match="no adapter file found.*lora_other_32.pth"):
        find_lora_weights("lora_other", tmp_path, "gen3", 32)
    with pytest.raises(LoRAError, match="no such LoRA adapter file"):
        find_lora_weights("missing.pth", tmp_path, "gen3", 32)


@pytest.mark.parametrize("generation", ["v1", "gen3"])
def test_weights_saved_with_adapters_load_with_them(generation, tmp_path):
    """A LoRA run's checkpoint (the whole state_dict, adapters included, as upstream's resume file) loads as base
    + adapter, unmerged; the generation's weights file leaves the adapter out."""
    m = with_random_adapter(tiny(generation))
    ids = torch.randint(0, 64, (2, 9))
    torch.save(m.state_dict(), tmp_path / "checkpoint.pth")
    again = load_minimind(tmp_path / "checkpoint.pth")
    assert len(list(adapted_layers(again))) == 4
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, m(ids).logits, atol=0, rtol=0)
    save_minimind(m, tmp_path / "weights.pth")
    assert not list(adapted_layers(load_minimind(tmp_path / "weights.pth")))


@pytest.mark.gpu
def test_adapters_follow_the_model_onto_the_gpu(shared_dir):
    folder = shared_dir / "reference" / "gen3"
    io = torch.load(folder / "lora_io.pt", weights_only=True)
    m = load_lora(load_minimind(folder / "dense.pth", device="cuda", **io["base_config"]), folder / "lora.pth")
    assert all(p.is_cuda for p in m.parameters())
    ids = io["input_ids"].cuda()
    with torch.no_grad():
        torch.testing.assert_close(m(ids).logits.cpu(), io["logits_lora"], atol=1e-3, rtol=0)
        assert generate(m, ids[:1, :8], max_new_tokens=4, temperature=0).shape == (1, 12)
        apply_lora(m)  # fresh adapters are built on the CPU (upstream's draws), then moved
        assert all(p.is_cuda for p in m.parameters())
        merge_lora(load_lora(m, folder / "lora.pth"))
        torch.testing.assert_close(m(ids).logits.cpu(), io["logits_merged"], atol=1e-3, rtol=0)
