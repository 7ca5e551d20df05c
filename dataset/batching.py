"""Which samples form each batch, and turning those samples into tensors padded only as far as needed.

The reference pads every sample to max_seq_len. Here a batch is padded to its own longest sample, and
can further be split into length-sorted passes ("chunks"), each padded to its own longest member, so
that almost no padding is computed; or packed into one row with no padding at all (PackedBatch, for
the trainer's packed forward). Causal attention means real positions never see the padding and
padded positions carry loss mask 0; the trainer sums each chunk's cross-entropy and divides by the
whole batch's mask count, so loss and gradient equal the reference's single padded pass.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> np.ndarray:
    """Sample order for one epoch: file order, or a permutation seeded by (seed, epoch)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Single process: the last batch may be short (as in the reference's DataLoader). Several
    processes: only whole global batches, so every rank steps the same number of times."""
    if world_size == 1:
        return math.ceil(n / batch_size)
    return n // (batch_size * world_size)


def epoch_batches(n: int, epoch: int, batch_size: int, seed: int, shuffle: bool,
                  world_size: int = 1, rank: int = 0) -> list[np.ndarray]:
    """This rank's sample indices for each batch of the epoch. Global batch k is samples
    order[k*B*W : (k+1)*B*W]; rank r takes the r-th slice of B, so a run on W processes sees the same
    global batches as one process with batch size B*W."""
    order = epoch_order(n, epoch, seed, shuffle)
    global_batch = batch_size * world_size
    out = []
    for k in range(batches_per_epoch(n, batch_size, world_size)):
        start = k * global_batch + rank * batch_size
        out.append(order[start:start + batch_size])
    return out


class Batch(NamedTuple):
    X: torch.Tensor          # (B, T) input ids
    Y: torch.Tensor          # (B, T) next-token targets
    loss_mask: torch.Tensor  # (B, T) 1 where the loss counts
    loss_rows: torch.Tensor  # (n,) flat indices of those positions in B*T: the model's loss needs no nonzero()
    real_tokens: int         # non-padding input positions
    padded_tokens: int       # B * T positions actually computed


def pinned(pin: bool, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors in page-locked memory when `pin` (a batch bound for a GPU: faster, asynchronous copies)."""
    return tuple(t.pin_memory() for t in tensors) if pin else tensors


class Collator:
    """Turns a list of sample indices into a Batch, reading token ids from a TokenCache."""

    def __init__(self, cache, pad_id: int = 0, pin_memory: bool = False):
        self.cache = cache
        self.pad_id = pad_id
        self.pin_memory = pin_memory

    def __call__(self, indices) -> Batch:
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.cache.offsets[indices]
        lengths = self.cache.lengths[indices]
        width = max(int(lengths.max()), 2)  # ids per row; X and Y are one shorter
        ids = np.full((len(indices), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(indices), width), dtype=np.int64)
        for row, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):  # one slice copy per sample
            ids[row, :n] = self.cache.tokens[s:s + n]
            mask[row, :n] = self.cache.mask[s:s + n]
        ids_t = torch.from_numpy(ids)
        X = ids_t[:, :-1].contiguous()
        Y = ids_t[:, 1:].contiguous()
        kept = mask[:, 1:].copy()
        X, Y, M, R = pinned(self.pin_memory, X, Y, torch.from_numpy(kept), torch.from_numpy(np.flatnonzero(kept)))
        real = int(np.maximum(lengths - 1, 0).sum())
        return Batch(X, Y, M, R, real, X.numel())


def plan_chunks(lengths: np.ndarray, token_budget: int) -> list[np.ndarray]:
    """Positions within a batch grouped into forward passes: longest first, each pass padded to its own
    longest sample and holding at most `token_budget` padded tokens (always at least one sample).
    A budget of 0 gives one sample per pass (no padding at all); a huge one gives a single pass."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    chunks: list[list[int]] = []
    width = 0
    for pos in order.tolist():
        if chunks and (len(chunks[-1]) + 1) * width <= token_budget:
            chunks[-1].append(pos)
        else:
            chunks.append([pos])
            width = int(lengths[pos])
    return [np.asarray(c, dtype=np.int64) for c in chunks]


class ChunkedCollator:
    """A batch as a list of Batch passes planned by `plan_chunks` (token_budget=None: one pass)."""

    def __init__(self, collate: Collator, token_budget: int | None):
        self.collate = collate
        self.cache = collate.cache
        self.token_budget = token_budget

    def __call__(self, indices) -> list[Batch]:
        indices = np.asarray(indices, dtype=np.int64)
        if self.token_budget is None:
            return [self.collate(indices)]
        return [self.collate(indices[c]) for c in plan_chunks(self.cache.lengths[indices], self.token_budget)]


class PairCollator:
    """DPO's batches: a list of pair indices -> one padded pass of their chosen sides, then their rejected ones
    (dataset.datasets.DPOSides stores pair i as samples 2i and 2i + 1), as MiniMind runs them in one forward."""

    def __init__(self, collate: Collator):
        self.collate = collate
        self.cache = collate.cache

    def __call__(self, pairs) -> list[Batch]:
        pairs = np.asarray(pairs, dtype=np.int64)
        return [self.collate(np.concatenate([2 * pairs, 2 * pairs + 1]))]


class PackedBatch(NamedTuple):
    """A whole batch as one row without any padding: samples back to back, each attending only to
    itself (spans), with RoPE positions restarting at 0 for each sample."""
    X: torch.Tensor          # (1, N) input ids of all samples
    Y: torch.Tensor          # (1, N) targets
    loss_mask: torch.Tensor  # (1, N)
    loss_rows: torch.Tensor  # (n,) indices of the loss-mask positions in the row
    positions: torch.Tensor  # (N,) position of each token within its own sample
    spans: list              # [(start, end)] of each sample in the row
    real_tokens: int
    padded_tokens: int       # = real_tokens: nothing is padded


class PackingCollator:
    """Turns a list of sample indices into a PackedBatch, reading from a TokenCache."""

    def __init__(self, cache, pin_memory: bool = False):
        self.cache = cache
        self.pin_memory = pin_memory

    def __call__(self, indices) -> list[PackedBatch]:
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.cache.offsets[indices]
        lengths = np.maximum(self.cache.lengths[indices] - 1, 1)  # inputs per sample (a 1-id sample: 1 pad)
        n = int(lengths.sum())
        ids = np.zeros(n + 1, dtype=np.int64)
        targets = np.zeros(n, dtype=np.int64)
        mask = np.zeros(n, dtype=np.int64)
        positions = np.zeros(n, dtype=np.int64)
        spans, at = [], 0
        for s, full, k in zip(starts.tolist(), self.cache.lengths[indices].tolist(), lengths.tolist(), strict=True):
            tok = self.cache.tokens[s:s + full]
            ids[at:at + min(full, k)] = tok[:k]
            targets[at:at + full - 1] = tok[1:]
            mask[at:at + full - 1] = self.cache.mask[s + 1:s + full]
            positions[at:at + k] = np.arange(k)
            spans.append((at, at + k))
            at += k
        X, Y, M, R, P = pinned(self.pin_memory, torch.from_numpy(ids[:n])[None], torch.from_numpy(targets)[None],
                               torch.from_numpy(mask)[None], torch.from_numpy(np.flatnonzero(mask)),
                               torch.from_numpy(positions))
        real = int(np.maximum(self.cache.lengths[indices] - 1, 0).sum())
        return [PackedBatch(X, Y, M, R, P, spans, real, n)]


class _IndexDataset(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def iterate(batches: list[np.ndarray], collate, num_workers: int = 0) -> Iterator:
    """Collated batches in order; with workers, a DataLoader prepares the next ones in the background."""
    if num_workers <= 0:
        for b in batches:
            yield collate(b)
        return
    # Workers cannot pin (that needs CUDA in the worker); the loader pins in the main process instead.
    unpinned: PackingCollator | Collator | ChunkedCollator
    if isinstance(collate, PackingCollator):
        pin, unpinned = collate.pin_memory, PackingCollator(collate.cache, pin_memory=False)
    else:
        inner = collate.collate if isinstance(collate, ChunkedCollator) else collate
        pin = inner.pin_memory
        plain = Collator(inner.cache, inner.pad_id, pin_memory=False)
        unpinned = ChunkedCollator(plain, collate.token_budget) if isinstance(collate, ChunkedCollator) else plain
    loader = torch.utils.data.DataLoader(
        _IndexDataset(len(collate.cache)), batch_sampler=[b.tolist() for b in batches],
        collate_fn=unpinned, num_workers=num_workers, pin_memory=pin)
    yield from loader
