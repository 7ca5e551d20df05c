"""Helpers shared by several test folders (tests/conftest.py puts this folder on sys.path)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

# The demo-size model shrunk further: each training step takes milliseconds on one CPU core.
TINY = ["--dim", "32", "--n_layers", "1", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "48",
        "--log_interval", "1"]


def write_demo_corpus(folder: Path) -> dict[str, Path]:
    """A small slice of the demo corpus: 96 pretraining lines and 64 conversations."""
    from minimind_tui.demo import pretrain_lines, sft_lines, write_jsonl

    write_jsonl(folder / "pretrain.jsonl", pretrain_lines(96))
    write_jsonl(folder / "sft.jsonl", sft_lines(64))
    return {"pretrain": folder / "pretrain.jsonl", "sft": folder / "sft.jsonl"}


def train_here(cwd: Path, *args: str, env: dict | None = None, monkeypatch=None) -> int:
    """The `train` CLI in this process (no second torch import: fast)."""
    from minimind_tui.cli import main as cli_main

    monkeypatch.chdir(cwd)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    try:
        return cli_main(["train", *args])
    finally:
        for k in env or {}:
            monkeypatch.delenv(k)


class FakeTokenCache:
    """What the batching code reads from a token cache, built from (ids, mask) pairs in memory."""

    def __init__(self, samples):
        self.tokens = np.concatenate([s[0] for s in samples]).astype(np.uint16)
        self.mask = np.concatenate([s[1] for s in samples]).astype(np.uint8)
        self.offsets = np.cumsum([0] + [len(s[0]) for s in samples])
        self.lengths = np.diff(self.offsets)

    def __len__(self):
        return len(self.lengths)


async def wait_for(pilot, condition, what="condition", rounds: int = 500):
    """Let the app run until condition() holds; fail after a bounded number of rounds. `what` may be a
    callable, called on failure, to say what the app showed instead."""
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def finishes(call, seconds: float = 10.0):
    """call() in a daemon thread: its result, or an AssertionError if it blocks (a FIFO open would, forever)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(_outcome(call)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"blocked for {seconds:g}s"
    return result[0]


def _outcome(call):
    """What call() returned, or the exception it raised."""
    try:
        return call()
    except Exception as e:
        return e

