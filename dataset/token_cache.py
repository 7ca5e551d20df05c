"""Tokenise a dataset once into memory-mapped token files, reused by every later run.

A cache folder holds every sample's unpadded ids (uint16 when the vocabulary fits, else int32), its
per-id loss mask (uint8) and the start offset of each sample (int64), plus meta.json. It is keyed by
the data file's fingerprint, the tokenizer's fingerprint, max_length, the mode and the bad-line
policy, so any change to one of them builds a new cache. A build writes into a temporary folder and
renames it into place, so an interrupted build is never mistaken for a finished one. Opening a cache
maps the files: RAM use does not grow with the data.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .jsonl import cache_dir

FORMAT_VERSION = 1
FLUSH_TOKENS = 1 << 20   # write to disk every ~1M tokens: the build's memory stays flat
ENCODE_CHUNK = 512       # samples tokenised together (the Rust tokenizer batches them across cores)


def cache_key(data_fingerprint: str, tokenizer_fingerprint: str, max_length: int, mode: str,
              skip_bad_lines: bool = False) -> str:
    text = f"v{FORMAT_VERSION}|{data_fingerprint}|{tokenizer_fingerprint}|{max_length}|{mode}|{int(skip_bad_lines)}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_root() -> Path:
    return cache_dir() / "tokens"


class TokenCache:
    """Read-only view of a built cache: `len`, `lengths`, `sample(i) -> (ids, mask)` as numpy views."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.offsets = np.load(self.folder / "offsets.npy", mmap_mode="r")
        n_tokens = int(self.offsets[-1])
        dtype = np.dtype(self.meta["dtype"])
        # np.memmap refuses empty files; a cache of empty samples is degenerate but legal.
        self.tokens = np.memmap(self.folder / "tokens.bin", dtype=dtype, mode="r") if n_tokens else np.zeros(0, dtype)
        self.mask = np.memmap(self.folder / "mask.bin", dtype=np.uint8, mode="r") if n_tokens else np.zeros(0, np.uint8)
        self.lengths = np.diff(self.offsets).astype(np.int64)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.tokens[s:e], self.mask[s:e]


def _encode_chunk(dataset, start: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Samples start..stop-1 exactly as `dataset.encode(i)` gives them, batched where the dataset allows."""
    if hasattr(dataset, "prompt") and hasattr(dataset, "finish"):  # SFT: batch the tokenizer call
        prompts = [dataset.prompt(i) for i in range(start, stop)]
        ids = dataset.tokenizer.encode_batch(prompts)
        return [dataset.finish(np.asarray(x[:dataset.max_length], dtype=np.int64)) for x in ids]
    return [dataset.encode(i) for i in range(start, stop)]


def build(dataset, folder: Path, vocab_size: int, meta: dict,
          progress: Callable[[int, int], None] | None = None) -> TokenCache:
    """Tokenise every sample of `dataset` into `folder` (atomically). `progress(done, total)` may raise
    to abandon the build (a stop request)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    dtype = np.uint16 if vocab_size <= 1 << 16 else np.int32
    n = len(dataset)
    offsets = np.zeros(n + 1, dtype=np.int64)
    try:
        with open(tmp / "tokens.bin", "wb") as ftok, open(tmp / "mask.bin", "wb") as fmask:
            pend_ids: list[np.ndarray] = []
            pend_mask: list[np.ndarray] = []
            pending = total = 0
            for start in range(0, n, ENCODE_CHUNK):
                stop = min(start + ENCODE_CHUNK, n)
                for k, (ids, mask) in enumerate(_encode_chunk(dataset, start, stop)):
                    pend_ids.append(np.asarray(ids))
                    pend_mask.append(np.asarray(mask))
                    total += len(ids)
                    pending += len(ids)
                    offsets[start + k + 1] = total
                if pending >= FLUSH_TOKENS or stop == n:
                    if pend_ids:
                        ftok.write(np.concatenate(pend_ids).astype(dtype).tobytes())
                        fmask.write(np.concatenate(pend_mask).astype(np.uint8).tobytes())
                    pend_ids, pend_mask, pending = [], [], 0
                if progress:
                    progress(stop, n)
        np.save(tmp / "offsets.npy", offsets)
        meta = {**meta, "format": FORMAT_VERSION, "dtype": np.dtype(dtype).name, "samples": n,
                "tokens": int(total), "built_at": time.time()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # lost a race to an identical build: use theirs
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TokenCache(folder)


def open_cache(folder: Path) -> TokenCache | None:
    """The cache at `folder` if it is complete and readable, else None (it will be rebuilt)."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        return None
    try:
        cache = TokenCache(folder)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    expected = np.dtype(cache.meta["dtype"]).itemsize * cache.n_tokens
    if (cache.n_tokens and (folder / "tokens.bin").stat().st_size != expected):
        return None
    return cache
