"""Generation engine: cache equivalence, sampling controls, stopping and cancellation."""
import threading

import pytest
import torch

from model import LMConfig, MiniMindLM
from model.checkpoint import load_model
from model.generate import GenerationError, apply_repetition_penalty, decode_step, generate, prefill, sample_next
from model.kv_cache import KVCache

VOCAB = 256


def tiny_model(use_moe: bool = False, seed: int = 0, max_seq_len: int = 128) -> MiniMindLM:
    torch.manual_seed(seed)
    return MiniMindLM(LMConfig(dim=64, n_layers=2, n_heads=8, n_kv_heads=2, vocab_size=VOCAB,
                               max_seq_len=max_seq_len, use_moe=use_moe)).eval()


def greedy_by_recompute(model, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The slow obvious way: run the whole sequence again for every new token, no cache."""
    with torch.inference_mode():
        for _ in range(n):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def prompt(batch=1, length=12, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=g)


@pytest.fixture(params=["dense", "moe"])
def model(request):
    return tiny_model(use_moe=request.param == "moe")


def test_greedy_with_cache_equals_full_recompute(model):
    ids = prompt(batch=2)
    got = generate(model, ids, max_new_tokens=30, temperature=0, eos_token_id=None)
    assert torch.equal(got, greedy_by_recompute(model, ids, 30))


@pytest.mark.parametrize("name", ["minimind_tiny", "minimind_tiny_moe"])
def test_reference_checkpoint_cache_logits_and_greedy(shared_dir, name):
    io = torch.load(shared_dir / "reference" / f"{name}_io.pt", weights_only=True)
    cfg = io["config"]
    model = load_model(shared_dir / "reference" / f"{name}.pth", n_heads=cfg["n_heads"],
                       max_seq_len=cfg["max_seq_len"])
    ids = io["input_ids"]
    # The reference's own cached decoding: prefill 20 tokens, then feed tokens 20..23 one at a time.
    with torch.inference_mode():
        cache = KVCache.for_model(model, ids.shape[0], ids.shape[1])
        steps = [prefill(model, ids[:, :20], cache)]
        steps += [decode_step(model, ids[:, p:p + 1], cache, p) for p in range(20, 24)]
    assert io["kv_cache_positions"] == [19, 20, 21, 22, 23]
    torch.testing.assert_close(torch.stack(steps, dim=1), io["kv_cache_logits"], atol=1e-5, rtol=0)

    got = generate(model, ids[:, :16], max_new_tokens=24, temperature=0, eos_token_id=None)
    assert torch.equal(got, greedy_by_recompute(model, ids[:, :16], 24))


def test_decode_step_matches_model_forward_with_cache(model):
    ids = prompt(length=10)
    with torch.inference_mode():
        ours, theirs = KVCache.for_model(model, 1, 16), KVCache.for_model(model, 1, 16)
        model(ids, past_key_values=theirs)
        prefill(model, ids, ours)
        for pos, tok in enumerate([5, 9, 77], start=10):
            t = torch.tensor([[tok]])
            expected = model(t, past_key_values=theirs, start_pos=pos).logits[:, -1]
            torch.testing.assert_close(decode_step(model, t, ours, pos), expected, atol=1e-5, rtol=0)
        assert ours.length == theirs.length == 13


def test_stream_yields_the_same_tokens_as_the_tensor_result():
    model, ids = tiny_model(), prompt()
    streamed = list(generate(model, ids, max_new_tokens=15, temperature=0.9, top_p=0.8, seed=3, stream=True,
                             eos_token_id=None))
    assert all(isinstance(t, int) for t in streamed)
    whole = generate(model, ids, max_new_tokens=15, temperature=0.9, top_p=0.8, seed=3, eos_token_id=None)
    assert whole[0, ids.shape[1]:].tolist() == streamed


def test_top_k_1_and_tiny_top_p_are_greedy():
    model, ids = tiny_model(), prompt()
    greedy = generate(model, ids, max_new_tokens=20, temperature=0, eos_token_id=None)
    assert torch.equal(generate(model, ids, max_new_tokens=20, temperature=1.5, top_k=1, top_p=1.0,
                                eos_token_id=None), greedy)
    assert torch.equal(generate(model, ids, max_new_tokens=20, temperature=1.5, top_p=1e-6,
                                eos_token_id=None), greedy)


def test_seed_reproduces_sampling_and_leaves_global_rng_alone():
    model, ids = tiny_model(), prompt()
    state = torch.get_rng_state()
    runs = [generate(model, ids, max_new_tokens=25, temperature=1.0, top_p=1.0, seed=s, eos_token_id=None)
            for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert torch.equal(torch.get_rng_state(), state)


def test_sampling_respects_top_k_and_top_p_sets():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(400, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=3, generator=g).tolist()) == {0, 1, 2}
    # Probabilities at T=1: .64 .24 .09 .03 ...: top_p=0.8 keeps exactly the first two.
    assert set(sample_next(logits, 1.0, top_p=0.8, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, 0.0).tolist()) == {0}


def test_repetition_penalty_lowers_seen_tokens_of_either_sign():
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]


def test_repetition_penalty_reduces_repeats_in_generation():
    model, ids = tiny_model(), prompt(length=4)
    plain = generate(model, ids, max_new_tokens=40, temperature=0, eos_token_id=None)[0, 4:]
    penalised = generate(model, ids, max_new_tokens=40, temperature=0, eos_token_id=None,
                         repetition_penalty=2.0)[0, 4:]
    # Random weights loop on one or two tokens; the penalty breaks the loop.
    assert len(set(plain.tolist())) <= 3
    assert len(set(penalised.tolist())) >= 20


def test_eos_stops_generation_and_max_new_tokens_counts_new_tokens():
    model, ids = tiny_model(), prompt(length=9)
    first = generate(model, ids, max_new_tokens=1, temperature=0, eos_token_id=None)[0, -1].item()
    assert list(generate(model, ids, max_new_tokens=50, temperature=0, eos_token_id=first, stream=True)) == [first]
    assert generate(model, ids, max_new_tokens=7, temperature=0, eos_token_id=None).shape == (1, 16)
    # The model's context bounds it too: 128 - 9 = 119 new tokens at most.
    assert generate(model, ids, max_new_tokens=500, temperature=0, eos_token_id=None).shape == (1, 128)


def test_finished_rows_are_padded_while_others_continue():
    model, ids = tiny_model(), prompt(batch=2)
    greedy = generate(model, ids, max_new_tokens=10, temperature=0, eos_token_id=None)
    eos = greedy[0, 12].item()  # row 0 ends at its first new token
    got = generate(model, ids, max_new_tokens=10, temperature=0, eos_token_id=eos, pad_token_id=0)
    assert got[0, 12].item() == eos and set(got[0, 13:].tolist()) <= {0}
    row1 = greedy[1, 12:].tolist()
    expected = row1[:row1.index(eos) + 1] if eos in row1 else row1
    assert got[1, 12:12 + len(expected)].tolist() == expected


def test_stop_flag_cancels_between_tokens():
    model, ids = tiny_model(), prompt()
    stop = threading.Event()
    got = []
    for token in generate(model, ids, max_new_tokens=100, temperature=0, eos_token_id=None, stream=True, stop=stop):
        got.append(token)
        if len(got) == 3:
            stop.set()  # e.g. the UI's Esc key, from another thread
    assert len(got) == 3
    assert list(generate(model, ids, max_new_tokens=5, stream=True, stop=stop)) == []


def test_cancel_from_another_thread_ends_a_long_generation():
    model, ids = tiny_model(max_seq_len=4096), prompt()
    stop, got = threading.Event(), []

    def consume():
        for token in generate(model, ids, max_new_tokens=4000, temperature=0, eos_token_id=None, stream=True,
                              stop=stop):
            got.append(token)

    worker = threading.Thread(target=consume)
    worker.start()
    for _ in range(10_000):  # bounded wait for the first tokens
        if len(got) >= 2:
            break
        worker.join(0.005)
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    assert 2 <= len(got) < 4000


def test_prompt_longer_than_context_is_a_clear_error():
    model = tiny_model(max_seq_len=16)
    with pytest.raises(GenerationError, match="max_seq_len is 16") as e:
        generate(model, prompt(length=16), max_new_tokens=3)
    assert e.value.user_facing


def test_list_input_and_method_on_model():
    model = tiny_model()
    ids = prompt()[0].tolist()
    got = model.generate(ids, max_new_tokens=4, temperature=0, eos_token_id=None)
    assert got.shape == (1, 16) and got[0, :12].tolist() == ids


@pytest.mark.gpu
def test_cuda_generation_matches_recompute_and_reproduces_with_seed():
    model, ids = tiny_model().cuda(), prompt(batch=2).cuda()
    got = generate(model, ids, max_new_tokens=20, temperature=0, eos_token_id=None)
    assert torch.equal(got, greedy_by_recompute(model, ids, 20))
    a = generate(model, ids, max_new_tokens=20, temperature=1.0, seed=5, eos_token_id=None)
    assert torch.equal(a, generate(model, ids, max_new_tokens=20, temperature=1.0, seed=5, eos_token_id=None))


@pytest.mark.parametrize("name", ["minimind_tiny", "minimind_tiny_moe"])
def test_int8_decoding_stays_close_to_fp32(shared_dir, name):
    from model.int8 import Int8Weights, available

    if not available("cpu"):
        pytest.skip("this PyTorch has no int8 weight-only CPU kernel")
    io = torch.load(shared_dir / "reference" / f"{name}_io.pt", weights_only=True)
    model = load_model(shared_dir / "reference" / f"{name}.pth", max_seq_len=io["config"]["max_seq_len"])
    ids, expected = io["input_ids"], io["kv_cache_logits"][:, 1:]
    with torch.inference_mode():
        cache = KVCache.for_model(model, 2, 24)
        prefill(model, ids[:, :20], cache)
        q = Int8Weights.for_model(model)
        got = torch.stack([decode_step(model, ids[:, p:p + 1], cache, p, q) for p in range(20, 24)], dim=1)
    assert not torch.equal(got, expected)  # really the int8 path, not the fp32 one
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()
    # Random weights have near-ties; the most likely token must agree almost everywhere.
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.75


def test_int8_weights_are_cached_and_rebuilt_after_a_weight_change():
    from model.int8 import Int8Weights, available

    if not available("cpu"):
        pytest.skip("this PyTorch has no int8 weight-only CPU kernel")
    model = tiny_model()
    first = Int8Weights.for_model(model)
    assert Int8Weights.for_model(model) is first
    with torch.no_grad():
        model.layers[0].attention.wq.weight.mul_(2.0)
    assert Int8Weights.for_model(model) is not first
    ids = prompt()
    out = generate(model, ids, max_new_tokens=6, temperature=0, eos_token_id=None, int8=True)
    assert out.shape == (1, 18)
