"""Round two, item 10: a damaged token cache is found when it is opened and rebuilt, saying so.

Flipped bytes, a truncated mask.bin or a damaged offsets.npy used to crash every later run the same way
(IndexError in the embedding, numpy broadcast errors) without naming the cache. Each case below damages the
cache the real trainer built, then runs the trainer again: it must say, in one line naming the cache folder,
that the cache failed its check, rebuild it, and train.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from reliability_kit import TINY
from testkit import of_kind, train_here

from dataset.token_cache import default_root, open_cache

FILES = ("tokens.bin", "mask.bin", "offsets.npy")


def flip_tokens(folder: Path) -> None:
    """Two bytes of one id set to 0xff: id 65535, beyond any MiniMind vocabulary."""
    data = bytearray((folder / "tokens.bin").read_bytes())
    data[len(data) // 2 & ~1: (len(data) // 2 & ~1) + 2] = b"\xff\xff"
    (folder / "tokens.bin").write_bytes(bytes(data))


def flip_mask(folder: Path) -> None:
    data = bytearray((folder / "mask.bin").read_bytes())
    data[len(data) // 3] = 0x41
    (folder / "mask.bin").write_bytes(bytes(data))


def truncate_mask(folder: Path) -> None:
    data = (folder / "mask.bin").read_bytes()
    (folder / "mask.bin").write_bytes(data[:len(data) - 100])


def swap_offsets(folder: Path) -> None:
    """Two sample offsets exchanged: same size, still a valid .npy, but samples of negative length."""
    offsets = np.load(folder / "offsets.npy")
    offsets[5], offsets[6] = offsets[6], offsets[5]
    np.save(folder / "offsets.npy", offsets)


def shift_offsets(folder: Path) -> None:
    """A few bytes changed in the data of offsets.npy: still rising, but not where the samples are."""
    offsets = np.load(folder / "offsets.npy")
    offsets[3:-1] += 1
    np.save(folder / "offsets.npy", offsets)


def garble_meta(folder: Path) -> None:
    (folder / "meta.json").write_text("[1, 2]")


def lose_tokens(folder: Path) -> None:
    (folder / "tokens.bin").unlink()


DAMAGE = {"flipped token bytes": flip_tokens, "flipped mask byte": flip_mask, "truncated mask.bin": truncate_mask,
          "swapped offsets": swap_offsets, "shifted offsets": shift_offsets, "meta.json a list": garble_meta,
          "tokens.bin missing": lose_tokens}


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMIND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_cache_is_named_and_rebuilt(tmp_path, own_cache, corpus, monkeypatch, capsys, kind, measured):
    args = ["--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8", "--init", "none",
            "--save_interval", "1000"]
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "first", monkeypatch=monkeypatch) == 0
    (folder,) = default_root().iterdir()
    good = snapshot(folder)
    DAMAGE[kind](folder)
    assert open_cache(folder) is None
    capsys.readouterr()
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "second", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "failed its check" in line]
    assert len(said) == 1 and str(folder) in said[0] and said[0].endswith("rebuilding it"), out[-2000:]
    assert snapshot(folder) == good  # rebuilt exactly as before
    warnings = [e["message"] for e in of_kind(tmp_path / "second", "log") if e.get("level") == "warning"]
    assert any("failed its check" in w for w in warnings)
    reason = re.sub(r".*failed its check: ", "", said[0]).removesuffix("; rebuilding it")
    measured[f"token cache: {kind}"] = reason


def test_caches_built_before_the_checks_still_open(tmp_path, own_cache, corpus, tiny_tokenizer):
    """A cache without the recorded sizes, checksum and vocabulary is checked by what it has, not rebuilt."""
    from dataset.datasets import PretrainDataset
    from dataset.token_cache import build

    folder = tmp_path / "old"
    build(PretrainDataset(corpus["pretrain"], tiny_tokenizer, max_length=32), folder, tiny_tokenizer.vocab_size, {})
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("files", "offsets_sha256", "vocab_size"):
        del meta[key]
    (folder / "meta.json").write_text(json.dumps(meta))
    assert open_cache(folder) is not None
    truncate_mask(folder)
    assert open_cache(folder) is None


def test_a_folder_without_meta_is_reported(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    said = []
    assert open_cache(folder, report=said.append) is None
    assert said == [f"token cache {folder} failed its check: meta.json is missing"]
    shutil.rmtree(folder)
    assert open_cache(folder, report=said.append) is None and len(said) == 1  # absent: nothing to report
