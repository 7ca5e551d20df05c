"""A preallocated key/value cache: decoding writes one slot per token instead of re-concatenating."""
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
        end = start_pos + k.shape[1]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; asked to write up to {end}")
        self.k[layer, :, start_pos:end] = k
        self.v[layer, :, start_pos:end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]

    def advance(self, length: int) -> None:
        self.length = length
