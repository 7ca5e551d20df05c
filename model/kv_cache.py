"""Key/value caches: what attention keeps of earlier positions when decoding.

KVCache, preallocated, is what generate.py uses: decoding writes one slot per token. ConcatCache is
MiniMind's format (a list of (k, v) per layer, re-concatenated at every step), kept for code written
against MiniMind's `use_cache=True`. Both give attention the same two calls: `update` and `advance`.
"""
from __future__ import annotations

import torch


class KVCache:
    def __init__(self, n_layers: int, batch: int, max_len: int, n_kv_heads: int, head_dim: int,
                 dtype=torch.float32, device="cpu"):
        shape = (n_layers, batch, max_len, n_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0  # tokens already cached

    @classmethod
    def for_model(cls, model, batch: int, max_len: int) -> KVCache:
        c = model.config
        p = next(model.parameters())
        return cls(c.n_layers, batch, max_len, c.n_kv_heads, c.head_dim, dtype=p.dtype, device=p.device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start_pos: int):
        """Write k, v (B, T, n_kv, hd) at start_pos; returns views of every position up to theirs."""
        end = start_pos + k.shape[1]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; asked to write up to {end}")
        self.k[layer, :, start_pos:end] = k
        self.v[layer, :, start_pos:end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]

    def advance(self, length: int) -> None:
        self.length = length


class ConcatCache:
    """MiniMind's cache: per layer a (k, v) pair of every position so far (None before the first)."""

    def __init__(self, pairs: list | None, n_layers: int):
        self.pairs: list = list(pairs) if pairs is not None else [None] * n_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start_pos: int):
        """Append k, v (B, T, n_kv, hd) to the layer's pair; returns the extended pair."""
        past = self.pairs[layer]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)
        self.pairs[layer] = (k, v)
        return k, v

    def advance(self, length: int) -> None:
        pass  # the pairs' own length says it
