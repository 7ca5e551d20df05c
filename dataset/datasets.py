"""PretrainDataset, SFTDataset and DPODataset: what each sample means, exactly as the tokenizer's MiniMind
generation defines it (model/tokenizer.py tells the generation from the tokenizer).

`ds[i]` gives that generation's own item, padded to max_length:
- v1: `(X, Y, loss_mask)`, each max_length - 1 long;
- MiniMind2 / minimind-3: `(input_ids, labels)`, max_length long, labels unshifted with -100 where untrained;
- DPO, every generation: the dict of x/y/mask for chosen and rejected, max_length - 1 long.
`ds.encode(i)` gives the same pretraining/SFT sample unpadded, as ids and a per-id mask in the same coordinates
(dataset/masking.py explains how that maps onto each generation's item), so a batch padded only to its longest
sample computes the same loss with less work.
"""
from __future__ import annotations

import numpy as np
import orjson
import torch
from torch.utils.data import Dataset

from model.tokenizer import Tokenizer

from .conversation import Randomness, render_side
from .jsonl import JsonlFile
from .masking import SampleEncoder, assistant_mask, sft_markers
from .validate import checked_lines

IGNORE_INDEX = -100  # MiniMind2/minimind-3 labels: not a target


class _JsonlDataset(Dataset):
    kind = ""

    def __init__(self, path, tokenizer: Tokenizer, max_length: int = 512, skip_bad_lines: bool = False,
                 report=print, jsonl: JsonlFile | None = None, randomness: Randomness | None = None):
        self.file = jsonl or JsonlFile(path)
        self.path = self.file.path
        self.tokenizer = tokenizer
        self.generation = tokenizer.generation
        self.max_length = max_length
        self.randomness = randomness or Randomness()
        self.lines = np.asarray(checked_lines(self.file, self.kind, skip_bad_lines, report, self.generation),
                                dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lines)

    def sample(self, i: int) -> dict:
        return orjson.loads(self.file.line(int(self.lines[i])))

    def line_number(self, i: int) -> int:
        return int(self.lines[i]) + 1

    @property
    def cache_tag(self) -> str:
        """What a token cache of this dataset is keyed by besides data, tokenizer, length and kind."""
        return self.randomness.tag()


class _TokenDataset(_JsonlDataset):
    """Pretraining and SFT: one token sequence per line. `text(i)` is what is tokenised and `finish(ids)`
    turns its ids into the sample, so the token cache can tokenise many texts in one call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder = SampleEncoder(self.tokenizer, self.kind, self.max_length, self.randomness)

    def text(self, i: int) -> str:
        return self.encoder.text(self.sample(i), int(self.lines[i]))  # random draws are keyed by the line

    def finish(self, ids) -> tuple[np.ndarray, np.ndarray]:
        return self.encoder.finish(ids)

    def encode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.encoder.encode(self.sample(i), int(self.lines[i]))

    def encode_many(self, start: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """`encode(i)` for samples start..stop-1 in one batched tokenizer call (the token cache's)."""
        return self.encoder.encode_texts([self.text(i) for i in range(start, stop)])

    def __getitem__(self, i: int):
        ids, mask = self.encode(i)
        pad = self.max_length - len(ids)
        ids = np.pad(ids, (0, pad), constant_values=self.tokenizer.pad_token_id).astype(np.int64)
        mask = np.pad(mask, (0, pad)).astype(bool)
        if self.generation == "v1":
            X = torch.from_numpy(ids[:-1].copy())
            Y = torch.from_numpy(ids[1:].copy())
            return X, Y, torch.from_numpy(mask[1:].astype(np.int64))
        labels = np.where(mask, ids, IGNORE_INDEX)
        return torch.from_numpy(ids), torch.from_numpy(labels)


class PretrainDataset(_TokenDataset):
    """`{"text": ...}` lines: v1 `<s>text</s>` cut at max_length; MiniMind2/minimind-3 the text cut at
    max_length - 2 between bos and eos. Loss on every id but the pad id."""

    kind = "pretrain"


class SFTDataset(_TokenDataset):
    """`{"conversations": [...]}` lines through the chat template, loss on assistant replies only.

    `add_system_ratio` / `empty_think_ratio` / `seed`: see dataset/conversation.py (defaults: no change)."""

    kind = "sft"

    def __init__(self, path, tokenizer: Tokenizer, max_length: int = 512, skip_bad_lines: bool = False,
                 report=print, jsonl: JsonlFile | None = None, *, add_system_ratio: float = 0.0,
                 empty_think_ratio: float = 1.0, seed: int = 0):
        super().__init__(path, tokenizer, max_length, skip_bad_lines, report, jsonl,
                         Randomness(add_system_ratio, empty_think_ratio, seed))

    def prompt(self, i: int) -> str:
        """The rendered conversation of sample i (after the random system prompt and empty-think draws)."""
        return self.text(i)


class DPODataset(_JsonlDataset):
    """`{"chosen": [...], "rejected": [...]}` lines. Each side is rendered without a generation prompt, its empty
    think blocks drawn for (chosen first), cut at max_length and padded to it, and masked by the SFT rule."""

    kind = "dpo"

    def __init__(self, path, tokenizer: Tokenizer, max_length: int = 1024, skip_bad_lines: bool = False,
                 report=print, jsonl: JsonlFile | None = None, *, empty_think_ratio: float = 1.0, seed: int = 0):
        super().__init__(path, tokenizer, max_length, skip_bad_lines, report, jsonl,
                         Randomness(0.0, empty_think_ratio, seed))
        self.markers = sft_markers(tokenizer)

    def prompts(self, i: int) -> tuple[str, str]:
        obj, r = self.sample(i), self.randomness
        rng = r.rng(int(self.lines[i]))  # one generator for both sides: chosen draws first, as upstream
        return (render_side(self.tokenizer, obj["chosen"], rng, r.empty_think_ratio),
                render_side(self.tokenizer, obj["rejected"], rng, r.empty_think_ratio))

    def _side(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.tokenizer.encode(self.tokenizer.head(text, self.max_length))[:self.max_length],
                         dtype=np.int64)
        ids = np.pad(ids, (0, self.max_length - len(ids)), constant_values=self.tokenizer.pad_token_id)
        return ids, assistant_mask(ids, self.markers, self.max_length).astype(np.int64)

    def __getitem__(self, i: int) -> dict:
        out = {}
        for name, text in zip(("chosen", "rejected"), self.prompts(i), strict=True):
            ids, mask = self._side(text)
            out[f"x_{name}"] = torch.from_numpy(ids[:-1].copy())
            out[f"y_{name}"] = torch.from_numpy(ids[1:].copy())
            out[f"mask_{name}"] = torch.from_numpy(mask[1:].copy())
        return {k: out[k] for k in ("x_chosen", "y_chosen", "mask_chosen", "x_rejected", "y_rejected",
                                    "mask_rejected")}


class DPOSides:
    """A DPODataset's pairs as 2n samples for the token cache and the trainer's batches: sample 2i is pair i's
    chosen side, 2i + 1 its rejected one, each (ids, mask) unpadded as SFT samples are, so that ids[1:] and
    mask[1:] are DPODataset's y and mask (a reply cut by max_length marks the padding after it, as upstream's
    mask over the padded ids does, so the sample reaches to its last marked position)."""

    kind = "dpo"

    def __init__(self, pairs: DPODataset):
        self.pairs = pairs
        self.file = pairs.file
        self.encoder = SampleEncoder(pairs.tokenizer, "sft", pairs.max_length)

    def __len__(self) -> int:
        return 2 * len(self.pairs)

    def encode_many(self, start: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
        sides: dict[int, tuple[str, str]] = {}
        texts = [sides.setdefault(i // 2, self.pairs.prompts(i // 2))[i % 2] for i in range(start, stop)]
        return self.encoder.encode_texts(texts)

    def encode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_many(i, i + 1)[0]
