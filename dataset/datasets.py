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
from .masking import _find, assistant_mask, finish_sft, pretrain_ids, sft_markers  # noqa: F401 (re-exported)
from .validate import checked_lines, messages_of


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
        self.head, self.tail = sft_markers(self.tokenizer)

    def prompt(self, i: int) -> str:
        return render_chat(messages_of(self.sample(i)), self.tokenizer.bos_token, self.tokenizer.eos_token)

    def encode(self, i: int):
        return self.encode_prompt(self.prompt(i))

    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.tokenizer.encode(prompt)[:self.max_length], dtype=np.int64)
        return self.finish(ids)

    def finish(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mask for already tokenised (and truncated) ids; see `masking.finish_sft`."""
        return finish_sft(ids, self.head, self.tail, self.max_length, self.tokenizer.pad_token_id)
