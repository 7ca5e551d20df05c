"""Batch order (file order, seeded shuffles, DDP shards) and pad-to-longest collation with the same loss
as the reference's pad-to-max_length batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from testkit import FakeTokenCache

from dataset.batching import Collator, batches_per_epoch, epoch_batches


def test_file_order_gives_the_reference_batches():
    b = epoch_batches(10, epoch=0, batch_size=4, seed=1, shuffle=False)
    assert [x.tolist() for x in b] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # last batch short, as the reference


def test_shuffle_is_seeded_and_new_each_epoch():
    a0 = np.concatenate(epoch_batches(50, 0, 8, seed=5, shuffle=True))
    assert sorted(a0.tolist()) == list(range(50))
    assert np.array_equal(a0, np.concatenate(epoch_batches(50, 0, 8, seed=5, shuffle=True)))
    assert not np.array_equal(a0, np.concatenate(epoch_batches(50, 1, 8, seed=5, shuffle=True)))
    assert not np.array_equal(a0, np.concatenate(epoch_batches(50, 0, 8, seed=6, shuffle=True)))


def test_ranks_split_each_global_batch():
    single = epoch_batches(50, 2, 6, seed=1, shuffle=True)
    r0 = epoch_batches(50, 2, 3, seed=1, shuffle=True, world_size=2, rank=0)
    r1 = epoch_batches(50, 2, 3, seed=1, shuffle=True, world_size=2, rank=1)
    assert batches_per_epoch(50, 3, 2) == len(r0) == len(r1) == 8  # whole global batches only
    for k in range(8):
        assert np.concatenate([r0[k], r1[k]]).tolist() == single[k].tolist()


def test_padding_only_to_the_longest_sample_keeps_the_loss():
    from model import LMConfig, MiniMindLM

    rng = np.random.default_rng(0)
    max_len = 40
    samples = []
    for n in (7, 19, 12, 30):
        ids = rng.integers(3, 200, n)
        mask = (rng.random(n) < 0.6).astype(np.uint8)
        samples.append((ids, mask))
    batch = Collator(FakeTokenCache(samples))(range(4))
    assert batch.X.shape == (4, 29) and batch.real_tokens == 6 + 18 + 11 + 29 and batch.padded_tokens == 4 * 29
    assert torch.equal(batch.Y[1, :18], torch.from_numpy(samples[1][0][1:]).long())
    assert batch.loss_mask[0, 6:].sum() == 0 and batch.X[0, 7:].sum() == 0

    # The reference: every sample padded to max_len, full logits, per-token CE times mask.
    full = torch.zeros(4, max_len, dtype=torch.long)
    fmask = torch.zeros(4, max_len, dtype=torch.long)
    for i, (ids, mask) in enumerate(samples):
        full[i, :len(ids)] = torch.from_numpy(ids)
        fmask[i, :len(ids)] = torch.from_numpy(mask.astype(np.int64))
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=32, n_layers=2, n_heads=4, vocab_size=256, max_seq_len=64))
    X, Y, M = full[:, :-1], full[:, 1:], fmask[:, 1:]
    with torch.no_grad():
        logits = model(X).logits
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), Y.reshape(-1), reduction="none").view(Y.shape)
    ref = (ce * M).sum() / M.sum()
    with torch.no_grad():
        ours = model(batch.X, labels=batch.Y, loss_mask=batch.loss_mask, return_logits=False).loss
    assert float(ours) == pytest.approx(float(ref), abs=1e-5)


def test_plan_chunks():
    from dataset.batching import plan_chunks

    lengths = np.array([5, 50, 7, 48, 6])
    assert [c.tolist() for c in plan_chunks(lengths, 0)] == [[1], [3], [2], [4], [0]]
    assert [c.tolist() for c in plan_chunks(lengths, 100)] == [[1, 3], [2, 4, 0]]  # 2x50 fits, 3x50 would not
    assert [sorted(c.tolist()) for c in plan_chunks(lengths, 10 ** 9)] == [[0, 1, 2, 3, 4]]


def test_chunked_passes_give_the_single_pass_loss_and_gradient():
    """What the trainer does: per-pass CE sums over the batch's mask count, backward per pass."""
    from dataset.batching import ChunkedCollator
    from model import LMConfig, MiniMindLM

    rng = np.random.default_rng(1)
    samples = [(rng.integers(3, 200, n), (rng.random(n) < 0.7).astype(np.uint8)) for n in (9, 33, 17, 4, 25)]
    cache = FakeTokenCache(samples)
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=32, n_layers=2, n_heads=4, vocab_size=256, max_seq_len=64))

    whole = ChunkedCollator(Collator(cache), None)(range(5))[0]
    model(whole.X, labels=whole.Y, loss_mask=whole.loss_mask, return_logits=False).loss.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    passes = ChunkedCollator(Collator(cache), 0)(range(5))
    assert len(passes) == 5 and sum(p.padded_tokens for p in passes) == whole.real_tokens
    n = sum(int(p.loss_mask.sum()) for p in passes)
    total = 0.0
    for p in passes:
        loss = model(p.X, labels=p.Y, loss_mask=p.loss_mask, return_logits=False).loss
        part = loss * max(int(p.loss_mask.sum()), 1) / n
        part.backward()
        total += float(part.detach())
    with torch.no_grad():
        ref = model(whole.X, labels=whole.Y, loss_mask=whole.loss_mask, return_logits=False).loss
    assert total == pytest.approx(float(ref), abs=1e-5)
    for g, r in zip((p.grad for p in model.parameters()), ref_grads, strict=False):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_collators_give_the_loss_rows_so_the_model_needs_no_nonzero():
    from dataset.batching import PackingCollator

    rng = np.random.default_rng(4)
    samples = [(rng.integers(3, 200, n), (rng.random(n) < 0.5).astype(np.uint8)) for n in (9, 1, 23, 14)]
    cache = FakeTokenCache(samples)
    padded = Collator(cache)(range(4))
    (packed,) = PackingCollator(cache)(range(4))
    for batch in (padded, packed):
        assert batch.loss_rows.dtype == torch.long
        assert batch.loss_rows.tolist() == batch.loss_mask.reshape(-1).nonzero().squeeze(1).tolist()
        assert len(batch.loss_rows) == int(sum(m[1:].sum() for _, m in samples))
