"""The packed forward computes the model's loss and gradients without computing any padding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from testkit import FakeTokenCache

from dataset.batching import Collator, PackingCollator
from model import LMConfig, MiniMindLM


def test_packed_loss_and_gradients_equal_the_padded_batch():
    rng = np.random.default_rng(3)
    samples = [(rng.integers(3, 200, n), (rng.random(n) < 0.6).astype(np.uint8)) for n in (12, 40, 3, 27, 1)]
    cache = FakeTokenCache(samples)
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=32, n_layers=2, n_heads=4, vocab_size=256, max_seq_len=64))

    padded = Collator(cache)(range(5))
    model(padded.X, labels=padded.Y, loss_mask=padded.loss_mask, return_logits=False).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        ref_loss = model(padded.X, labels=padded.Y, loss_mask=padded.loss_mask, return_logits=False).loss
    model.zero_grad()

    (packed,) = PackingCollator(cache)(range(5))
    assert packed.X.shape == (1, 11 + 39 + 2 + 26 + 1)   # no padding (the 1-token sample keeps one input)
    assert packed.positions[:12].tolist() == list(range(11)) + [0]
    assert packed.real_tokens == padded.real_tokens
    out = model(packed.X, labels=packed.Y, loss_rows=packed.loss_rows, positions=packed.positions,
                spans=packed.spans, return_logits=False)
    out.loss.backward()
    assert abs(float(out.loss.detach()) - float(ref_loss)) < 1e-5
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], atol=1e-5, rtol=1e-4, msg=n)


def test_packed_rows_are_refused_for_moe_and_need_positions_with_spans():
    cache = FakeTokenCache([(np.arange(3, 9), np.ones(6, dtype=np.uint8))])
    (packed,) = PackingCollator(cache)(range(1))
    moe = MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, vocab_size=64, max_seq_len=16, use_moe=True))
    with pytest.raises(ValueError, match="dense models"):
        moe(packed.X, positions=packed.positions, spans=packed.spans)
    dense = MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, vocab_size=64, max_seq_len=16))
    with pytest.raises(ValueError, match="both positions and spans"):
        dense(packed.X, positions=packed.positions)
