"""From --data_path to a memory-mapped token cache (built once per node, with progress) on every rank."""
from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dataset import DataError
from dataset.conversation import Randomness
from dataset.jsonl import JsonlFile
from dataset.token_cache import TokenCache, build, cache_key, default_root, open_cache

from . import distributed
from .args import DATA_KIND
from .distributed import DistInfo


class Progress:
    """A progress line: redrawn in place on a terminal, a line every ~10% in a log; also reported as
    `prepare` events so the dashboard can show it."""

    def __init__(self, label: str, emit: Callable | None, check_stop: Callable[[], None]):
        self.label = label
        self.emit = emit
        self.check_stop = check_stop
        self.t0 = time.time()
        self.last_print = self.last_emit = 0.0
        self.last_tenth = -1
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        self.check_stop()
        now = time.time()
        frac = done / max(total, 1)
        text = f"{self.label}: {frac:6.1%} {done}/{total} samples, {now - self.t0:.1f} s"
        if self.tty and (now - self.last_print > 0.2 or done == total):
            print("\r" + text, end="\n" if done == total else "", file=sys.stderr, flush=True)
            self.last_print = now
        elif not self.tty and (int(frac * 10) > self.last_tenth):
            self.last_tenth = int(frac * 10)
            print(text, file=sys.stderr, flush=True)
        if self.emit and (now - self.last_emit > 1.0 or done == total):
            self.emit("prepare", stage="tokenise", done=done, total=total)
            self.last_emit = now


def held_out_split(n: int, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) sample indices for --eval_ratio, each in file order: `ratio` of the n samples
    (at least one), drawn by the seed alone. Its own generator, so the model's initial weights and the data
    order draw what they drew without it; a resumed run draws the same set again."""
    k = min(n, max(1, round(n * ratio)))
    held = np.sort(np.random.default_rng([seed, 0xE7A1]).permutation(n)[:k])
    keep = np.ones(n, dtype=bool)
    keep[held] = False
    return np.flatnonzero(keep), held


def sample_randomness(settings: dict) -> Randomness:
    """SFT's random system prompts and empty-think removal (--add_system_ratio, --empty_think_ratio), drawn per
    sample from the run's seed: the same samples in every run with that seed, on every rank."""
    kind = DATA_KIND[settings["mode"]]
    if kind == "pretrain":
        return Randomness()
    system = settings.get("add_system_ratio") or 0.0 if kind == "sft" else 0.0  # DPO adds no system prompt
    return Randomness(system, settings.get("empty_think_ratio", 1.0), settings["seed"])


def _dataset(settings: dict, jsonl: JsonlFile, tokenizer, report=print):
    from dataset.datasets import DPODataset, DPOSides, PretrainDataset, SFTDataset
    common = dict(skip_bad_lines=bool(settings["skip_bad_lines"]), report=report, jsonl=jsonl)
    kind = DATA_KIND[settings["mode"]]
    if kind == "pretrain":
        return PretrainDataset(jsonl.path, tokenizer, settings["max_seq_len"], **common)
    r = sample_randomness(settings)
    if kind == "dpo":
        return DPOSides(DPODataset(jsonl.path, tokenizer, settings["max_seq_len"], **common,
                                   empty_think_ratio=r.empty_think_ratio, seed=r.seed))
    return SFTDataset(jsonl.path, tokenizer, settings["max_seq_len"], **common, add_system_ratio=r.add_system_ratio,
                      empty_think_ratio=r.empty_think_ratio, seed=r.seed)


def _skip_reporter(emit):
    """--skip_bad_lines: say how many lines were skipped in train.log and, as a warning, in the run's events
    (the dashboard shows it); the message is kept with the token cache so a cached start repeats it."""
    said: list[str] = []

    def report(text: str) -> None:
        said.append(text)
        print(text, flush=True)
        if emit:
            emit("log", level="warning", message=text)
    return report, said


def prepare(settings: dict, tokenizer, info: DistInfo, emit=None, check_stop=lambda: None,
            root: Path | None = None) -> TokenCache:
    """Local rank 0 of each node opens or builds the cache on that node; the node's other ranks wait and
    open it (or raise their leader's error). Nodes need not share a file system: a cache under one
    node's home directory is no use to the others."""
    root = Path(root) if root else default_root()
    error, folder = None, None
    if info.local_rank == 0:
        try:
            folder = _open_or_build(settings, tokenizer, root, emit, check_stop).folder
        except DataError as e:
            error = str(e)
    # Every rank waits here (leaders build in parallel), then reads what its own node's leader found.
    error, folder = distributed.gather_objects((error, folder and str(folder)), info)[info.node_leader]
    if error:
        raise DataError(error)
    cache = open_cache(Path(folder))
    if cache is None:
        raise DataError(f"{folder}: token cache unreadable after building it")
    return cache


def _open_or_build(settings: dict, tokenizer, root: Path, emit, check_stop) -> TokenCache:
    path = Path(settings["data_path"])
    jsonl = JsonlFile(path)
    kind = DATA_KIND[settings["mode"]]  # LoRA and distillation read SFT data: one cache for all three
    key = cache_key(jsonl.fingerprint, tokenizer.fingerprint(), settings["max_seq_len"], kind,
                    bool(settings["skip_bad_lines"]), sample_randomness(settings).tag())
    folder = root / key
    cache = open_cache(folder, report=lambda why: _say(f"data: {why}; rebuilding it", emit))
    report, said = _skip_reporter(emit)
    if cache is not None:
        print(f"data: {path} ({len(cache)} samples, {cache.n_tokens} tokens; cached tokens {folder})", flush=True)
        if cache.meta.get("skipped"):
            report(cache.meta["skipped"])
        return cache
    shutil.rmtree(folder, ignore_errors=True)  # a damaged cache: rebuild
    print(f"data: checking {path} ({jsonl.n_lines} lines)", flush=True)
    ds = _dataset(settings, jsonl, tokenizer, report)
    meta = {"data_path": str(path.resolve()), "data_fingerprint": jsonl.fingerprint,
            "tokenizer_fingerprint": tokenizer.fingerprint(), "max_length": settings["max_seq_len"],
            "mode": kind, "skipped": said[0] if said else None}
    cache = build(ds, folder, tokenizer.vocab_size, meta, progress=Progress(f"tokenising {path.name}", emit,
                                                                              check_stop))
    print(f"data: {len(cache)} samples, {cache.n_tokens} tokens, cached in {folder}", flush=True)
    return cache


def _say(text: str, emit) -> None:
    """A warning for train.log and, as a `log` event, for the dashboard."""
    print(text, flush=True)
    if emit:
        emit("log", level="warning", message=text)
