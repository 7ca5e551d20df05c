"""--auto_batch_size: before training, the largest batch (at most the requested one) whose forward and
backward pass fits in memory at the longest sequence length, halving on out-of-memory.

The probe runs the batch as the step will: in passes of at most `rows_per_pass` rows (the chunk budget
on CUDA), gradients accumulating. Optimizer state (two fp32 copies of the weights for AdamW) comes on
top and is small next to activations for these model sizes. When the batch shrinks, accumulation grows
by the same factor so the effective batch, and so the recipe's optimisation, stay the same.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from .fault_hooks import fake_oom_for_batch


def fits(model, batch_size: int, seq_len: int, vocab: int, device: str, rows_per_pass: int, autocast) -> None:
    """One forward+backward of `batch_size` random sequences of `seq_len` tokens; raises OutOfMemoryError."""
    fake_oom_for_batch(batch_size)
    gen = torch.Generator().manual_seed(0)  # leaves the global RNG (and so the run) untouched
    try:
        for start in range(0, batch_size, rows_per_pass):
            n = min(rows_per_pass, batch_size - start)
            X = torch.randint(vocab, (n, seq_len), generator=gen).to(device)
            with autocast:
                out = model(X, labels=X, loss_mask=torch.ones_like(X), return_logits=False)
            out.loss.backward()
            del out, X
    finally:
        model.zero_grad(set_to_none=True)


def find_batch_size(model, requested: int, seq_len: int, vocab: int, device: str, rows_per_pass: int | None = None,
                    autocast=None, log: Callable[[str], None] = print) -> int:
    b = requested
    while True:
        try:
            fits(model, b, seq_len, vocab, device, rows_per_pass or b, autocast or contextlib.nullcontext())
            return b
        except torch.OutOfMemoryError:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            if b == 1:
                raise
            log(f"auto batch size: {b} does not fit at {seq_len} tokens; trying {b // 2}")
            b //= 2
