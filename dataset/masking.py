"""Token ids and loss masks of one sample, as MiniMind defines them (numpy only, no torch).

Kept apart from datasets.py so the dashboard and `data inspect` can show exactly what the trainer
will see without importing torch. `tokenizer` is anything with encode/bos_token/eos_token/pad_token_id.
"""
from __future__ import annotations

import numpy as np


def pretrain_ids(tokenizer, text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(tokenizer.encode(f"{tokenizer.bos_token}{text}{tokenizer.eos_token}")[:max_length],
                     dtype=np.int64)
    return ids, (ids != tokenizer.pad_token_id).astype(np.uint8)


def _find(ids: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Start positions where `pattern` occurs in `ids`."""
    n, m = len(ids), len(pattern)
    if n < m:
        return np.empty(0, dtype=np.int64)
    hits = np.ones(n - m + 1, dtype=bool)
    for k in range(m):
        hits &= ids[k:n - m + 1 + k] == pattern[k]
    return np.flatnonzero(hits)


def assistant_mask(ids: np.ndarray, head: np.ndarray, tail: np.ndarray, max_length: int) -> np.ndarray:
    """MiniMind's SFT loss mask over the padded ids: after each `head`, from one past the head through
    one past the closing `tail`, cut at max_length (the reference's exact rule)."""
    mask = np.zeros(len(ids), dtype=np.uint8)
    heads, tails = _find(ids, head), _find(ids, tail)
    n, i = len(ids), 0
    for h in heads:
        if h < i:
            continue  # inside a span already handled, as the reference's scan skips it
        start = int(h) + len(head)
        later = tails[tails >= start]
        end = int(later[0]) if len(later) else n
        mask[start + 1:min(end + len(tail) + 1, max_length)] = 1
        i = end + len(tail) if end < n else n
    return mask


def sft_markers(tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The id patterns the SFT mask looks for. The reference matches "<s>assistant" and "</s>" (no
    newline); its off-by-one start then skips the "\\n" after the header and its end takes in the "\\n"
    after "</s>"."""
    head = np.asarray(tokenizer.encode(f"{tokenizer.bos_token}assistant"), dtype=np.int64)
    tail = np.asarray(tokenizer.encode(tokenizer.eos_token), dtype=np.int64)
    return head, tail


def finish_sft(ids: np.ndarray, head: np.ndarray, tail: np.ndarray, max_length: int,
               pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask for already tokenised (and truncated) ids. The mask is computed over the ids padded to
    max_length, as the reference does; a reply cut by truncation can then mark padding positions,
    so the returned length extends to the last marked one."""
    padded = np.pad(ids, (0, max_length - len(ids)), constant_values=pad_id)
    mask = assistant_mask(padded, head, tail, max_length)
    marked = np.flatnonzero(mask)
    length = max(len(ids), int(marked[-1]) + 1 if len(marked) else 0)
    return padded[:length], mask[:length]
