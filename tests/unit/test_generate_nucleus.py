import torch

from model.generate import NUCLEUS_CANDIDATES, _nucleus_candidates


def plain_nucleus(logits, top_p):
    """Top-p written the obvious way over the full sorted vocabulary: {token: renormalised prob}."""
    probs = logits.softmax(-1)
    sorted_p, order = probs.sort(descending=True)
    keep = (sorted_p.cumsum(0) - sorted_p) < top_p
    kept = sorted_p[keep] / sorted_p[keep].sum()
    return dict(zip(order[keep].tolist(), kept.tolist(), strict=False))


def candidate_nucleus(logits, top_p):
    values, index, probs = _nucleus_candidates(logits[None], top_p)
    probs = probs.masked_fill((probs.cumsum(-1) - probs) >= top_p, 0.0)[0]
    keep = probs > 0
    return dict(zip(index[0][keep].tolist(), (probs[keep] / probs[keep].sum()).tolist(), strict=False))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) < 1e-5


def test_peaked_distribution_uses_the_candidates_and_matches_the_full_sort():
    torch.manual_seed(0)
    logits = torch.randn(6400) * 4  # peaked: the nucleus is a few dozen tokens
    values, index, probs = _nucleus_candidates(logits[None], 0.85)
    assert index.shape[-1] == NUCLEUS_CANDIDATES
    assert_same(candidate_nucleus(logits, 0.85), plain_nucleus(logits, 0.85))


def test_flat_distribution_falls_back_to_the_full_sort():
    logits = torch.zeros(6400)  # uniform: the nucleus is 85% of the vocabulary
    values, index, probs = _nucleus_candidates(logits[None], 0.85)
    assert index.shape[-1] == 6400
    assert abs(probs.sum().item() - 1.0) < 1e-4
    assert len(candidate_nucleus(logits, 0.85)) == len(plain_nucleus(logits, 0.85))
