"""Round two, item 4: an edit that keeps a data file's size is seen by the line index and the token cache.

The fingerprint used to be the size plus 16 sampled 64 KiB blocks, so editing bytes between the blocks without
changing the size reused the stale line index (good lines read as invalid JSON, `--skip-bad-lines` dropping
them) and the stale token cache. Each test edits a file of several MiB between those blocks, as a user's
`sed -i` of a typo would, and restores its mtime as `touch -r` or an unpacking tool does.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from reliability_kit import TINY
from testkit import train_here

import dataset.jsonl as jsonl_mod
from dataset.jsonl import JsonlFile, cache_dir, file_fingerprint
from dataset.stats import compute_stats

BLOCK = 1 << 16


def old_sampled_blocks(size: int) -> list[tuple[int, int]]:
    """The byte ranges the old fingerprint read: an edit outside them went unseen."""
    return [((size - BLOCK) * k // 15, (size - BLOCK) * k // 15 + BLOCK) for k in range(16)]


def unsampled_line(path: Path) -> tuple[int, int]:
    """(line index, byte offset) of a line lying wholly between two of the old sampled blocks."""
    data = path.read_bytes()
    blocks = old_sampled_blocks(len(data))
    gap_start, gap_end = blocks[7][1], blocks[8][0]
    start = data.index(b"\n", gap_start + 100) + 1
    assert data.index(b"\n", start) < gap_end - 100, "the file is too small for a gap between sampled blocks"
    return data.count(b"\n", 0, start), start


def same_size_edit(path: Path, offset: int, new: bytes) -> None:
    """Overwrite bytes in place and put the modification time back as it was."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def pretrain_file(path: Path, n: int, width: int) -> Path:
    rows = [json.dumps({"text": f"line {i}: " + "the quick brown fox jumps. " * (width // 27)}) for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def wait_past_clock_tick(path: Path) -> None:
    """Wait until the file system's clock has moved on from the file's last change, so the next write gets a
    new ctime (what RACY_NS guarantees in normal use; the tests below shorten it to 0)."""
    changed = path.stat().st_ctime_ns
    deadline = time.monotonic() + 5
    while time.time_ns() < changed + 50_000_000:
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def no_racy_window(monkeypatch):
    """Let a just-written test file's digest be remembered, so the tests exercise the remembered path."""
    monkeypatch.setattr(jsonl_mod, "RACY_NS", 0, raising=False)


def test_same_size_edit_between_sampled_blocks_gives_a_new_index(tmp_path, no_racy_window, measured):
    path = pretrain_file(tmp_path / "d.jsonl", 40_000, 60)  # ~3 MB: gaps of ~130 KiB between the old blocks
    before = JsonlFile(path)
    n = len(before)
    fingerprint = before.fingerprint
    k, offset = unsampled_line(path)
    line = before.line(k)
    # Split line k into two good lines of the same total length: every later line start moves.
    head = b'{"text": "a"}\n'
    tail_body = line[len(head):]
    replacement = head + b'{"text": "' + b"b" * (len(tail_body) - len(b'{"text": "') - 2) + b'"}'
    assert len(replacement) == len(line)
    wait_past_clock_tick(path)
    same_size_edit(path, offset, replacement)

    after = JsonlFile(path)
    assert after.fingerprint != fingerprint
    assert len(after) == n + 1
    assert [orjson.loads(after.line(i))["text"] for i in (k, k + 1)] == ["a", "b" * (len(tail_body) - 12)]
    st = compute_stats(after, "pretrain")
    assert st.bad_lines == 0 and st.samples == n + 1
    measured["same-size edit (index)"] = (f"{path.stat().st_size / 1e6:.1f} MB file, line {k + 1} split in two "
                                          f"in place at byte {offset}, mtime restored: new fingerprint, "
                                          f"{len(after)} lines, 0 bad")


def test_remembered_digest_is_used_only_while_the_file_is_unchanged(tmp_path, no_racy_window, monkeypatch):
    path = pretrain_file(tmp_path / "d.jsonl", 2_000, 60)
    first = JsonlFile(path).fingerprint
    reads = []
    real = jsonl_mod._read_pass
    monkeypatch.setattr(jsonl_mod, "_read_pass", lambda *a, **k: reads.append(k) or real(*a, **k))
    assert JsonlFile(path).fingerprint == first and reads == []  # unchanged: no read of the file at all
    wait_past_clock_tick(path)
    same_size_edit(path, 100, b"X")
    assert JsonlFile(path).fingerprint != first and len(reads) == 1  # ctime moved: hashed again


def test_a_digest_taken_right_after_a_change_is_not_remembered(tmp_path):
    """Two edits within one tick of the file system's clock can leave mtime and ctime unchanged: a file that
    changed less than RACY_NS before it was hashed is hashed again at the next open."""
    path = pretrain_file(tmp_path / "d.jsonl", 100, 60)
    fingerprint = JsonlFile(path).fingerprint
    assert not jsonl_mod._memo_path(path).exists()
    same_size_edit(path, 100, b"X")  # possibly within the same clock tick as the write above
    assert JsonlFile(path).fingerprint != fingerprint


def test_rehash_on_demand_ignores_the_remembered_digest(tmp_path, no_racy_window, capsys):
    """A remembered digest is only as good as the file's identity; `--rehash` hashes the bytes regardless."""
    from minimind_tui.cli import main as cli_main

    path = pretrain_file(tmp_path / "d.jsonl", 200, 60)
    true = JsonlFile(path).fingerprint
    memo = jsonl_mod._memo_path(path)
    forged = json.loads(memo.read_text())
    memo.write_text(json.dumps({**forged, "fingerprint": "0" * 20}))  # as if hashed before an unseen edit
    assert file_fingerprint(path) == "0" * 20
    assert file_fingerprint(path, rehash=True) == true
    memo.write_text(json.dumps({**forged, "fingerprint": "0" * 20}))
    assert cli_main(["data", "validate", "--rehash", str(path)]) == 0
    assert file_fingerprint(path) == true  # the CLI refreshed what the trainer will use


def test_a_damaged_cached_index_is_rebuilt(tmp_path, no_racy_window):
    path = pretrain_file(tmp_path / "d.jsonl", 500, 60)
    good = JsonlFile(path)
    cached = cache_dir() / "index" / f"{good.fingerprint}.npy"
    shifted = good.offsets.copy()
    shifted[1:] += 3  # still rising and within the file, but not at line starts
    np.save(cached, shifted)
    np.testing.assert_array_equal(JsonlFile(path).offsets, good.offsets)


def test_an_edit_while_the_cache_is_built_is_refused(tmp_path, no_racy_window, tiny_tokenizer):
    from dataset import DataError
    from dataset.datasets import PretrainDataset
    from dataset.token_cache import build

    path = pretrain_file(tmp_path / "d.jsonl", 200, 60)
    ds = PretrainDataset(path, tiny_tokenizer, max_length=32)
    wait_past_clock_tick(path)
    same_size_edit(path, 100, b"X")
    with pytest.raises(DataError, match="changed while it was being read"):
        build(ds, tmp_path / "cache", tiny_tokenizer.vocab_size, {}, workers=1)
    assert not (tmp_path / "cache").exists()


def test_trainer_retokenises_after_a_same_size_edit(tmp_path, no_racy_window, monkeypatch, capsys, measured):
    """The real `train` CLI twice on a 3 MB file edited in place between runs: the second run must build a
    new token cache holding the edited text, not reuse the first one."""
    from dataset.datasets import PretrainDataset
    from dataset.token_cache import default_root, open_cache
    from minimind_tui.demo import demo_tokenizer_dir
    from model import Tokenizer

    path = pretrain_file(tmp_path / "d.jsonl", 250, 12_000)  # long lines: 32 steps per epoch at batch 8
    args = ["--data_path", str(path), *TINY, "--batch_size", "8", "--init", "none", "--save_interval", "1000"]
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "one", monkeypatch=monkeypatch) == 0
    first = set(default_root().iterdir())
    k, offset = unsampled_line(path)
    wait_past_clock_tick(path)
    same_size_edit(path, offset + len('{"text": "'), b"EDITED")  # the first words of line k: kept by truncation
    capsys.readouterr()
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "two", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "cached tokens" not in out
    new = set(default_root().iterdir()) - first
    assert len(new) == 1
    cache = open_cache(new.pop())
    tok = Tokenizer.from_dir(demo_tokenizer_dir())
    expected, _ = PretrainDataset(JsonlFile(path, use_cache=False).path, tok, max_length=48).encode(k)
    np.testing.assert_array_equal(cache.sample(k)[0], expected)
    assert "EDITED" in tok.decode(cache.sample(k)[0].tolist())
    measured["same-size edit (token cache)"] = (f"{path.stat().st_size / 1e6:.1f} MB, 6 bytes of line {k + 1} "
                                                "edited in place, mtime restored: second run re-tokenised")
