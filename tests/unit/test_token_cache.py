"""The token cache holds exactly what the datasets define, is keyed so nothing stale is reused, and an
interrupted build leaves nothing behind."""
from __future__ import annotations

import numpy as np
import pytest

from dataset.datasets import PretrainDataset, SFTDataset
from dataset.token_cache import build, cache_key, open_cache
from minimind_tui.demo import demo_tokenizer_dir, pretrain_lines, sft_lines, write_jsonl
from model import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_dir(demo_tokenizer_dir())


@pytest.mark.parametrize("kind", ["pretrain", "sft"])
def test_cache_matches_dataset_encode(tmp_path, tok, kind):
    path = tmp_path / "d.jsonl"
    if kind == "pretrain":
        write_jsonl(path, pretrain_lines(40))
        ds = PretrainDataset(path, tok, max_length=24)
    else:
        write_jsonl(path, sft_lines(40))
        ds = SFTDataset(path, tok, max_length=40)  # short enough that some replies are truncated
    cache = build(ds, tmp_path / "c", tok.vocab_size, {"mode": kind})
    assert cache.tokens.dtype == np.uint16 and len(cache) == len(ds)
    for i in range(len(ds)):
        ids, mask = ds.encode(i)
        got_ids, got_mask = cache.sample(i)
        np.testing.assert_array_equal(got_ids, ids)
        np.testing.assert_array_equal(got_mask, mask)
    again = open_cache(tmp_path / "c")
    np.testing.assert_array_equal(again.lengths, cache.lengths)


def test_reference_sft_cases_survive_the_cache(tmp_path, shared_dir, ref_tokenizer):
    """Through cache and pad-to-longest collation, the reference's X, Y, loss_mask come back exactly
    (cut to the batch's width; beyond it the reference has only padding with mask 0)."""
    import torch

    from dataset.batching import Collator

    expected = torch.load(shared_dir / "reference" / "sft_cases_expected.pt", weights_only=True)
    ds = SFTDataset(shared_dir / "reference" / "sft_cases.jsonl", ref_tokenizer, max_length=128)
    cache = build(ds, tmp_path / "c", ref_tokenizer.vocab_size, {})
    batch = Collator(cache)(list(range(len(ds))))
    T = batch.X.shape[1]
    assert torch.equal(batch.X, expected["X"][:, :T])
    assert torch.equal(batch.Y, expected["Y"][:, :T])
    assert torch.equal(batch.loss_mask, expected["loss_mask"][:, :T])
    assert int(expected["loss_mask"][:, T:].sum()) == 0 and int(expected["X"][:, T:].sum()) == 0


def test_key_changes_with_every_input():
    base = cache_key("data", "tok", 512, "sft")
    assert len({base, cache_key("data2", "tok", 512, "sft"), cache_key("data", "tok2", 512, "sft"),
                cache_key("data", "tok", 256, "sft"), cache_key("data", "tok", 512, "pretrain"),
                cache_key("data", "tok", 512, "sft", skip_bad_lines=True)}) == 6


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_build_leaves_nothing(tmp_path, tok, workers, monkeypatch):
    import dataset.token_cache as tc
    monkeypatch.setattr(tc, "SPAN", 256)
    write_jsonl(tmp_path / "d.jsonl", pretrain_lines(2000))
    ds = PretrainDataset(tmp_path / "d.jsonl", tok, max_length=32)

    def stop(done, total):
        if done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(ds, tmp_path / "cache" / "k", tok.vocab_size, {}, progress=stop, workers=workers)
    assert list((tmp_path / "cache").iterdir()) == []
    assert open_cache(tmp_path / "cache" / "k") is None


def test_damaged_cache_is_not_opened(tmp_path, tok):
    write_jsonl(tmp_path / "d.jsonl", pretrain_lines(30))
    build(PretrainDataset(tmp_path / "d.jsonl", tok, max_length=32), tmp_path / "c", tok.vocab_size, {})
    data = (tmp_path / "c" / "tokens.bin").read_bytes()
    (tmp_path / "c" / "tokens.bin").write_bytes(data[: len(data) // 2])
    assert open_cache(tmp_path / "c") is None


def test_parallel_build_equals_the_serial_one(tmp_path, tok, monkeypatch):
    import dataset.token_cache as tc
    monkeypatch.setattr(tc, "SPAN", 64)  # several spans from a small file
    write_jsonl(tmp_path / "d.jsonl", sft_lines(300))
    ds = SFTDataset(tmp_path / "d.jsonl", tok, max_length=48)
    serial = build(ds, tmp_path / "a", tok.vocab_size, {}, workers=1)
    seen = []
    parallel = build(ds, tmp_path / "b", tok.vocab_size, {}, workers=2, progress=lambda d, n: seen.append(d))
    assert seen == [64, 128, 192, 256, 300]
    np.testing.assert_array_equal(parallel.offsets, serial.offsets)
    np.testing.assert_array_equal(parallel.tokens, serial.tokens)
    np.testing.assert_array_equal(parallel.mask, serial.mask)
