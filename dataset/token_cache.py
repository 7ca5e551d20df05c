"""Tokenise a dataset once into memory-mapped token files, reused by every later run.

A cache folder holds every sample's unpadded ids (uint16 when the vocabulary fits, else int32), its
per-id loss mask (uint8) and the start offset of each sample (int64), plus meta.json. It is keyed by
the data file's fingerprint, the tokenizer's fingerprint, max_length, the mode, the bad-line
policy and the dataset's random-change settings, so any change to one of them builds a new cache.
Every MiniMind generation is stored alike: ids and a mask of training targets in the same coordinates
(dataset/masking.py). A build writes into a temporary folder and
renames it into place, so an interrupted build is never mistaken for a finished one. Opening a cache
maps the files: RAM use does not grow with the data.

A cache is checked each time it is opened (`open_cache`), cheaply, so a damaged one is rebuilt rather than
crashing every run the same way: the size of every file as built, the SHA-256 of offsets.npy (8 bytes a
sample), offsets rising from 0 to the token count, and every id below the vocabulary size and every mask value
0 or 1 (a vectorised pass over the memory map: ~15 ms per 100 M ids when cached, no hashing of the big files).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .atomic import temp_dir
from .disk import human_size, refusal_message, refused
from .errors import DataError
from .jsonl import cache_dir

FORMAT_VERSION = 1
ENCODE_CHUNK = 512       # samples tokenised together (the Rust tokenizer batches them across cores)
FILES = ("tokens.bin", "mask.bin", "offsets.npy")
_CHECK_SPAN = 1 << 24    # ids checked per vectorised pass (bounded temporaries)


def cache_key(data_fingerprint: str, tokenizer_fingerprint: str, max_length: int, mode: str,
              skip_bad_lines: bool = False, tag: str = "") -> str:
    """`tag`: anything else the samples depend on (a dataset's `cache_tag`: its random system prompt and
    empty-think settings); empty for the defaults, which keeps the keys of earlier caches."""
    text = f"v{FORMAT_VERSION}|{data_fingerprint}|{tokenizer_fingerprint}|{max_length}|{mode}|{int(skip_bad_lines)}"
    if tag:
        text += f"|{tag}"
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
    if hasattr(dataset, "encode_many"):  # batch the tokenizer call
        return dataset.encode_many(start, stop)
    return [dataset.encode(i) for i in range(start, stop)]


SPAN = 4096              # samples per task when several processes tokenise
_worker_dataset = None   # the dataset, inherited by forked tokenising processes


def default_workers() -> int:
    """Processes for tokenising: all but one core on a big machine, none extra on a small one.
    MINIMIND_TUI_TOKENISE_WORKERS overrides."""
    env = os.environ.get("MINIMIND_TUI_TOKENISE_WORKERS")
    if env:
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores < 4 else min(cores - 1, 16)


def _worker_init() -> None:
    import signal
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # processes are the parallelism here
    # Forked from a trainer whose handlers turn signals into "stop after this step": here a Ctrl-C is
    # the parent's business, and the pool's SIGTERM must end the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _encode_span(span: tuple[int, int]) -> tuple[bytes, bytes, np.ndarray]:
    items = _encode_chunk(_worker_dataset, *span)
    lengths = np.fromiter((len(ids) for ids, _ in items), dtype=np.int64, count=len(items))
    ids = np.concatenate([np.asarray(i) for i, _ in items]) if items else np.zeros(0, np.int64)
    mask = np.concatenate([np.asarray(m) for _, m in items]) if items else np.zeros(0, np.uint8)
    return ids.astype(np.int32).tobytes(), mask.astype(np.uint8).tobytes(), lengths


def _spans_in_processes(dataset, n: int, workers: int):
    """(ids, mask, lengths) per span of samples, in order, tokenised by `workers` forked processes."""
    import multiprocessing

    global _worker_dataset
    _worker_dataset = dataset
    spans = [(a, min(a + SPAN, n)) for a in range(0, n, SPAN)]
    with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
        for ids, mask, lengths in pool.imap(_encode_span, spans):
            yield np.frombuffer(ids, dtype=np.int32), np.frombuffer(mask, dtype=np.uint8), lengths


def _spans_here(dataset, n: int):
    for start in range(0, n, ENCODE_CHUNK):
        items = _encode_chunk(dataset, start, min(start + ENCODE_CHUNK, n))
        lengths = np.fromiter((len(ids) for ids, _ in items), dtype=np.int64, count=len(items))
        yield (np.concatenate([np.asarray(i) for i, _ in items]), np.concatenate([np.asarray(m) for _, m in items]),
               lengths)


def build(dataset, folder: Path, vocab_size: int, meta: dict,
          progress: Callable[[int, int], None] | None = None, workers: int | None = None) -> TokenCache:
    """Tokenise every sample of `dataset` into `folder` (atomically). `progress(done, total)` may raise
    to abandon the build (a stop request). With workers > 1, forked processes tokenise spans of
    samples in parallel and this process writes them in order. A full, read-only or forbidden cache disk
    is a DataError naming the folder, the free space and what the cache needs; nothing is left behind."""
    try:
        return _build(dataset, Path(folder), vocab_size, meta, progress, workers)
    except OSError as e:
        if not refused(e):
            raise
        needed = cache_bytes(len(dataset), int(meta.get("max_length") or 0), vocab_size)
        raise DataError(refusal_message(
            Path(folder).parent, e, f"the token cache of {meta.get('data_path') or 'the data'} needs up to "
            f"{human_size(needed)}", "free space there, or set MINIMIND_CACHE to a folder on a disk with room")
        ) from None


def cache_bytes(samples: int, max_length: int, vocab_size: int) -> int:
    """The most a cache of `samples` samples can take: max_length ids (2 or 4 bytes) and as many mask bytes
    each, and an 8-byte offset each (a bound: most samples are shorter)."""
    per_id = np.dtype(id_dtype(vocab_size)).itemsize + 1
    return samples * max_length * per_id + 8 * (samples + 1)


def id_dtype(vocab_size: int) -> type:
    """How ids are stored: uint16 when the vocabulary fits, else int32."""
    return np.uint16 if vocab_size <= 1 << 16 else np.int32


def _build(dataset, folder: Path, vocab_size: int, meta: dict, progress, workers) -> TokenCache:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(folder)
    dtype = id_dtype(vocab_size)
    n = len(dataset)
    offsets = np.zeros(n + 1, dtype=np.int64)
    try:
        workers = default_workers() if workers is None else workers
        spans = _spans_in_processes(dataset, n, workers) if workers > 1 and n > SPAN else _spans_here(dataset, n)
        with open(tmp / "tokens.bin", "wb") as ftok, open(tmp / "mask.bin", "wb") as fmask:
            done = total = 0
            try:
                for ids, mask, lengths in spans:
                    ftok.write(ids.astype(dtype).tobytes())
                    fmask.write(mask.astype(np.uint8).tobytes())
                    offsets[done + 1:done + 1 + len(lengths)] = total + np.cumsum(lengths)
                    done += len(lengths)
                    total += int(lengths.sum())
                    if progress:
                        progress(done, n)
            finally:
                spans.close()  # also when progress() raised: ends the worker processes
        np.save(tmp / "offsets.npy", offsets)
        meta = {**meta, "format": FORMAT_VERSION, "dtype": np.dtype(dtype).name, "samples": n,
                "tokens": int(total), "vocab_size": int(vocab_size), "built_at": time.time(),
                "files": {name: (tmp / name).stat().st_size for name in FILES},
                "offsets_sha256": hashlib.sha256((tmp / "offsets.npy").read_bytes()).hexdigest()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        source = getattr(dataset, "file", None)
        if source is not None:
            source.check_unchanged()  # an edit while tokenising would leave a cache of neither version
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


def open_cache(folder: Path, report: Callable[[str], None] | None = None) -> TokenCache | None:
    """The cache at `folder` if it is complete and passes its checks, else None (it will be rebuilt).
    `report` is told, in one line naming the folder, why a cache that is there cannot be used."""
    folder = Path(folder)
    if not folder.exists():
        return None
    try:
        problem = damage(folder)
        if problem is None:
            return TokenCache(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
        problem = f"unreadable ({type(e).__name__}: {e})"
    if report:
        report(f"token cache {folder} failed its check: {problem}")
    return None


def damage(folder: Path) -> str | None:
    """What is wrong with the cache at `folder`, or None when it passes every check (see the module's doc).
    Caches built before the sizes, checksum and vocabulary were recorded get the checks that need none."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        return "meta.json is missing"
    meta = json.loads((folder / "meta.json").read_bytes())
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in ("samples", "tokens")):
        return "meta.json is not a cache's description"
    if meta.get("dtype") not in ("uint16", "int32"):
        return f"meta.json names an unknown dtype {meta.get('dtype')!r}"
    n, n_tokens, dtype = meta["samples"], meta["tokens"], np.dtype(meta["dtype"])
    sizes = {name: (folder / name).stat().st_size if (folder / name).is_file() else None for name in FILES}
    expected = {"tokens.bin": n_tokens * dtype.itemsize, "mask.bin": n_tokens, **meta.get("files", {})}
    for name, size in sizes.items():
        if size is None:
            return f"{name} is missing"
        if name in expected and size != expected[name]:
            return f"{name} is {size} bytes, {expected[name]} expected"
    raw = (folder / "offsets.npy").read_bytes()
    if "offsets_sha256" in meta and hashlib.sha256(raw).hexdigest() != meta["offsets_sha256"]:
        return "offsets.npy does not match its checksum"
    offsets = np.load(io.BytesIO(raw))
    if offsets.shape != (n + 1,) or offsets.dtype != np.int64 or offsets[0] != 0 or offsets[-1] != n_tokens \
            or bool((offsets[1:] < offsets[:-1]).any()):
        return "offsets.npy does not describe the samples (not rising from 0 to the token count)"
    if n_tokens:
        vocab = meta.get("vocab_size")
        tokens = np.memmap(folder / "tokens.bin", dtype=dtype, mode="r")
        mask = np.memmap(folder / "mask.bin", dtype=np.uint8, mode="r")
        for start in range(0, n_tokens, _CHECK_SPAN):
            ids = tokens[start:start + _CHECK_SPAN]
            if isinstance(vocab, int) and (int(ids.max()) >= vocab or int(ids.min()) < 0):
                return f"tokens.bin holds ids outside the vocabulary (0..{vocab - 1}) near id {start}"
            if int(mask[start:start + _CHECK_SPAN].max()) > 1:
                return f"mask.bin holds values other than 0 and 1 near id {start}"
    return None
