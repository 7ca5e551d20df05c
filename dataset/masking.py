"""Token ids and loss masks of one sample, as each MiniMind generation defines them (numpy only, no torch).

Kept apart from datasets.py so the dashboard and `data inspect` can show exactly what the trainer will see
without importing torch. `tokenizer` is a model.tokenizer.Tokenizer (or anything with its encode, special
tokens, `generation` and `sft_start_ids`/`sft_end_ids`).

One representation for every generation: a sample is its unpadded ids and a per-id mask in the same
coordinates, 1 where that id is a training target. The trainer feeds ids[:-1] and predicts ids[1:] where
mask[1:] is 1. MiniMind2/minimind-3 return (input_ids, labels), unshifted, with -100 for untrained
positions: labels[t] == input_ids[t] exactly where mask[t] == 1, and their model shifts internally, so
"upstream's label at position t+1" is our Y/mask at t and the loss is the same mean over the same targets.
v1 returns (X, Y, loss_mask) = (ids[:-1], ids[1:], mask[1:]).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .conversation import Randomness, render_conversation


def pretrain_text(tokenizer, text: str) -> str:
    """What is tokenised for a pretraining line: v1 wraps the text in `<s>`...`</s>` first; MiniMind2 and
    minimind-3 tokenise the text alone and add the ids of bos and eos after truncating it."""
    if tokenizer.generation == "v1":
        return f"{tokenizer.bos_token}{text}{tokenizer.eos_token}"
    return text


def finish_pretrain(tokenizer, ids, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids of `pretrain_text` -> the sample. v1 cuts the whole at max_length (a long text loses its `</s>`);
    MiniMind2/minimind-3 cut the text at max_length - 2 and always end with eos. The mask is every id that
    is not the pad id, as upstream masks by value: a literal `<|endoftext|>` in the text is masked too."""
    if isinstance(ids, np.ndarray):  # a whole long text's ids (the sample view): kept compact, no Python list
        if tokenizer.generation == "v1":
            out = ids[:max_length]
        else:
            ends = np.asarray([tokenizer.bos_token_id, tokenizer.eos_token_id], dtype=ids.dtype)
            out = np.concatenate((ends[:1], ids[:max(max_length - 2, 0)], ends[1:]))
    elif tokenizer.generation == "v1":
        out = np.asarray(ids[:max_length], dtype=np.int64)
    else:
        out = np.asarray([tokenizer.bos_token_id, *ids[:max(max_length - 2, 0)], tokenizer.eos_token_id],
                         dtype=np.int64)
    return out, (out != tokenizer.pad_token_id).astype(np.uint8)


def pretrain_ids(tokenizer, text: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    return finish_pretrain(tokenizer, tokenizer.encode(pretrain_text(tokenizer, text)), max_length)


def _find(ids: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Start positions where `pattern` occurs in `ids`."""
    n, m = len(ids), len(pattern)
    if n < m:
        return np.empty(0, dtype=np.int64)
    hits = np.ones(n - m + 1, dtype=bool)
    for k in range(m):
        hits &= ids[k:n - m + 1 + k] == pattern[k]
    return np.flatnonzero(hits)


class Markers(NamedTuple):
    """The SFT rule of a generation: after each `head`, the ids from `shift` past it through `shift` past the
    next `tail` are trained. v1's reference matches `<s>assistant` / `</s>` with shift 1 (skipping the newline
    after the header, taking the one after `</s>`); MiniMind2/minimind-3 match `<|im_start|>assistant\\n` /
    `<|im_end|>\\n` with shift 0. Both train the reply, the end token and its newline."""
    head: np.ndarray
    tail: np.ndarray
    shift: int


def sft_markers(tokenizer) -> Markers:
    return Markers(np.asarray(tokenizer.sft_start_ids, dtype=np.int64), np.asarray(tokenizer.sft_end_ids,
                   dtype=np.int64), 1 if tokenizer.generation == "v1" else 0)


def assistant_mask(ids: np.ndarray, markers: Markers, max_length: int) -> np.ndarray:
    """The SFT loss mask over the padded ids, by the reference's exact scan: the marker search knows nothing
    of turns, a span cut by truncation runs to the end, and heads inside a handled span are skipped."""
    head, tail, shift = markers
    mask = np.zeros(len(ids), dtype=np.uint8)
    heads, tails = _find(ids, head), _find(ids, tail)
    n, i = len(ids), 0
    for h in heads:
        if h < i:
            continue  # inside a span already handled, as the reference's scan skips it
        start = int(h) + len(head)
        later = tails[tails >= start]
        end = int(later[0]) if len(later) else n
        mask[start + shift:min(end + len(tail) + shift, max_length)] = 1
        i = end + len(tail) if end < n else n
    return mask


def finish_sft(ids: np.ndarray, markers: Markers, max_length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask for already tokenised (and truncated) ids. The mask is computed over the ids padded to
    max_length, as the reference does; a reply cut by truncation can then mark padding positions,
    so the returned length extends to the last marked one."""
    padded = np.pad(ids, (0, max_length - len(ids)), constant_values=pad_id) if len(ids) < max_length else ids
    mask = assistant_mask(padded, markers, max_length)
    last = len(mask) - int(np.argmax(mask[::-1])) if mask.any() else 0  # one past the last marked position
    length = max(len(ids), last)
    return padded[:length], mask[:length]


class SampleEncoder:
    """One line's training text, ids and mask for a tokenizer's generation: the one place the datasets, the
    token cache, `data inspect` and the Dataset tab get them from. `text(obj, i)` is what is tokenised,
    `finish(ids)` turns its ids into the sample (ids may come from a batched tokenizer call)."""

    def __init__(self, tokenizer, kind: str, max_length: int, randomness: Randomness | None = None):
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_length = max_length
        self.randomness = randomness or Randomness()
        self.markers = sft_markers(tokenizer) if kind == "sft" else None

    def text(self, obj: dict, index: int = 0) -> str:
        if self.kind == "pretrain":
            return pretrain_text(self.tokenizer, str(obj["text"]))
        r = self.randomness
        return render_conversation(self.tokenizer, obj, r.rng(index), r.add_system_ratio, r.empty_think_ratio)

    def finish(self, ids, max_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        max_length = self.max_length if max_length is None else max_length
        if self.kind == "pretrain":
            return finish_pretrain(self.tokenizer, ids, max_length)
        # A whole long text's ids (the sample view) stay in their compact dtype; a tokenizer's list becomes int64.
        kept = ids[:max_length] if isinstance(ids, np.ndarray) else np.asarray(ids[:max_length], dtype=np.int64)
        assert self.markers is not None  # kind == "sft"
        return finish_sft(kept, self.markers, max_length, self.tokenizer.pad_token_id)

    def head(self, text: str) -> str:
        """`text` cut where its first max_length ids are certain to come from (model/token_prefix.py): a line of
        many MB costs what max_length tokens cost, and its ids are exactly those of the whole, truncated."""
        head = getattr(self.tokenizer, "head", None)  # a stand-in tokenizer without it tokenises texts whole
        return head(text, self.max_length) if head else text

    def encode(self, obj: dict, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return self.finish(self.tokenizer.encode(self.head(self.text(obj, index))))

    def encode_texts(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`encode` for texts already made by `text`, in one batched tokenizer call."""
        return [self.finish(ids) for ids in self.tokenizer.encode_batch([self.head(t) for t in texts])]
