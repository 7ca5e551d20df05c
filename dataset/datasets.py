"""PretrainDataset and SFTDataset: what each sample means, exactly as MiniMind defines it.

`ds[i]` gives MiniMind's `(X, Y, loss_mask)`, padded to max_length. `ds.encode(i)` gives the same sample
unpadded (ids and a per-id mask in the same coordinates), so a batch padded only to its longest sample
computes the same loss with less work.
"""
from __future__ import annotations

import numpy as np
import orjson
import torch
from torch.utils.data import Dataset

from model.tokenizer import Tokenizer, render_chat

from .jsonl import JsonlFile
from .validate import checked_lines, messages_of


def pretrain_ids(tokenizer: Tokenizer, text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
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


class _JsonlDataset(Dataset):
    kind = ""

    def __init__(self, path, tokenizer: Tokenizer, max_length: int = 512, skip_bad_lines: bool = False,
                 report=print, jsonl: JsonlFile | None = None):
        self.file = jsonl or JsonlFile(path)
        self.path = self.file.path
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.lines = np.asarray(checked_lines(self.file, self.kind, skip_bad_lines, report), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lines)

    def sample(self, i: int) -> dict:
        return orjson.loads(self.file.line(int(self.lines[i])))

    def line_number(self, i: int) -> int:
        return int(self.lines[i]) + 1

    def encode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, i: int):
        ids, mask = self.encode(i)
        pad = self.max_length - len(ids)
        ids = np.pad(ids, (0, pad), constant_values=self.tokenizer.pad_token_id)
        mask = np.pad(mask, (0, pad))
        X = torch.from_numpy(ids[:-1].astype(np.int64))
        Y = torch.from_numpy(ids[1:].astype(np.int64))
        return X, Y, torch.from_numpy(mask[1:].astype(np.int64))


class PretrainDataset(_JsonlDataset):
    """`{"text": ...}` lines, rendered `<s>text</s>`, loss on every non-padding token."""

    kind = "pretrain"

    def encode(self, i: int):
        return pretrain_ids(self.tokenizer, self.sample(i)["text"], self.max_length)


class SFTDataset(_JsonlDataset):
    """`{"conversations": [...]}` lines through the chat template, loss on assistant replies only."""

    kind = "sft"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tok = self.tokenizer
        # The reference matches "<s>assistant" and "</s>" (no newline); its off-by-one start then skips
        # the "\n" after the header and its end takes in the "\n" after "</s>".
        self.head = np.asarray(tok.encode(f"{tok.bos_token}assistant"), dtype=np.int64)
        self.tail = np.asarray(tok.encode(tok.eos_token), dtype=np.int64)

    def prompt(self, i: int) -> str:
        return render_chat(messages_of(self.sample(i)), self.tokenizer.bos_token, self.tokenizer.eos_token)

    def encode(self, i: int):
        return self.encode_prompt(self.prompt(i))

    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.tokenizer.encode(prompt)[:self.max_length], dtype=np.int64)
        return self.finish(ids)

    def finish(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mask for already tokenised (and truncated) ids. The mask is computed over the ids padded to
        max_length, as the reference does; a reply cut by truncation can then mark padding positions,
        so the returned length extends to the last marked one."""
        padded = np.pad(ids, (0, self.max_length - len(ids)), constant_values=self.tokenizer.pad_token_id)
        mask = assistant_mask(padded, self.head, self.tail, self.max_length)
        marked = np.flatnonzero(mask)
        length = max(len(ids), int(marked[-1]) + 1 if len(marked) else 0)
        return padded[:length], mask[:length]
