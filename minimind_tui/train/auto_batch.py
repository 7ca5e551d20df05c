"""--auto_batch_size: before training, the largest batch (at most the requested one) whose forward and
backward pass fits in memory at the longest sequence length, halving on out-of-memory.

The probe runs the batch as the step will: in passes of at most `rows_per_pass` rows (the chunk budget
on CUDA), gradients accumulating. While a pass holds fewer rows than the batch, the pass, not the batch,
sets the peak: halving the batch would run the very same passes, so the search halves the pass instead
(the run then uses a smaller --chunk_tokens and keeps its batch). Once the whole batch is one pass, the
batch halves, and accumulation grows by the same factor so the effective batch, and so the recipe's
optimisation, stay the same. Optimizer state (two fp32 copies of the weights for AdamW) comes on top and
is small next to activations for these model sizes.
"""
from __future__ import annotations

import contextlib
import gc
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


def release(device: str) -> None:
    """Hand what a probe held back to the driver and reset the peak statistics, so the run's first memory
    report shows its own peak, not the probe's. Called outside any `except` block: a live out-of-memory
    exception keeps the failed probe's frames, and with them its activations."""
    if str(device).startswith("cuda"):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def find_batch_size(model, requested: int, seq_len: int, vocab: int, device: str, rows_per_pass: int | None = None,
                    autocast=None, log: Callable[[str], None] = print) -> tuple[int, int | None]:
    """(batch size, rows per pass) that fit; rows per pass None: the whole batch in one pass."""
    b, rows = requested, rows_per_pass
    while True:
        failure = None
        try:
            fits(model, b, seq_len, vocab, device, rows or b, autocast or contextlib.nullcontext())
        except torch.OutOfMemoryError as e:
            failure = str(e)
        release(device)
        if failure is None:
            return b, rows
        if rows is not None and rows < b:  # the pass sets the peak: shrink it, keep the batch
            if rows == 1:
                raise torch.OutOfMemoryError(failure)
            log(f"auto batch size: passes of {rows} x {seq_len} tokens do not fit; trying {rows // 2} per pass")
            rows //= 2
            continue
        if b == 1:
            raise torch.OutOfMemoryError(failure)
        log(f"auto batch size: {b} does not fit at {seq_len} tokens; trying {b // 2}")
        b //= 2
