"""Scenario 9: malformed JSONL of every kind, in the preview, the statistics and training: each bad line
reported with its line number and reason; training is strict by default; --skip_bad_lines trains on the
rest and says how many it skipped (train.log and the run's events, so the dashboard shows it)."""
from __future__ import annotations

import json

import pytest
from reliability_kit import TINY
from testkit import of_kind, train_here

from dataset.jsonl import JsonlFile
from dataset.preview import sample_from_raw
from dataset.stats import compute_stats
from minimind_tui.runs.summary import summarize


def conv(user: str, reply: str) -> bytes:
    return json.dumps({"conversations": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]},
                      ensure_ascii=False).encode()


GOOD_SFT = [conv(f"问题 {i}: 2+{i}=?", f"答案是 {2 + i}。") for i in range(40)]
BAD_SFT = [  # every kind of bad line a user's or a stranger's file brings
    b"{not json",                                                      # invalid JSON
    b"[1, 2]",                                                         # JSON, not an object
    b'{"text": "a pretraining line in an SFT file"}',                  # missing key
    b'{"conversations": "hello"}',                                     # wrong type
    b'{"conversations": [{"role": "user", "content": 5}]}',            # wrong content type
    b'{"conversations": []}',                                          # empty conversation
    conv("a", "b").replace(b'"user"', b'"robot"'),                     # unknown role
    '{"conversations": [{"role": "user", "content": "café"}]}'.encode("latin-1"),  # not UTF-8
    b'{"conversations": [{"role": "user", "content": "nul\x00byte"}]',  # truncated object with a NUL
]
GOOD_PRETRAIN = [json.dumps({"text": f"第 {i} 行：the quick brown fox {i}."}, ensure_ascii=False).encode()
                 for i in range(40)]
BAD_PRETRAIN = [b"{not json", b'"just a string"', b'{"txt": "typo in the key"}', b'{"text": 5}',
                b'{"text": "caf\xe9"}', b'{"text": "cut off mid']


def mixed(path, good, bad, bom=True):
    """Good lines with the bad ones spread through; a BOM, CRLF endings and blank lines (all harmless);
    the last line has no newline (a file cut off mid-write). Returns the 1-based numbers of the bad lines."""
    lines, bad_numbers = [], []
    for i, g in enumerate(good):
        lines.append(g)
        if i % 4 == 1 and bad:
            lines.append(bad[0])
            bad_numbers.append(len(lines))
            bad = bad[1:]
        if i == 5:
            lines.append(b"   ")
    lines += bad  # any left over go at the end; the very last one has no newline
    bad_numbers += range(len(lines) - len(bad) + 1, len(lines) + 1)
    body = b"\r\n".join(lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    return bad_numbers


@pytest.mark.parametrize("kind, good, bad", [("sft", GOOD_SFT, BAD_SFT), ("pretrain", GOOD_PRETRAIN, BAD_PRETRAIN)])
def test_preview_and_stats_name_every_bad_line(tmp_path, kind, good, bad):
    path = tmp_path / f"{kind}.jsonl"
    numbers = mixed(path, good, bad)
    jsonl = JsonlFile(path)
    samples = [sample_from_raw(jsonl.line(i), i, kind) for i in range(len(jsonl))]
    flagged = [s.line_number for s in samples if not s.ok and not s.error.startswith("blank")]
    assert flagged == numbers
    assert all(s.error and s.raw is not None for s in samples if s.line_number in numbers)
    st = compute_stats(jsonl, kind)
    assert st.bad_lines == len(bad) and [b.line_number for b in st.bad] == numbers
    assert st.samples == len(good) and st.blank_lines == 1


@pytest.mark.parametrize("kind, good, bad", [("sft", GOOD_SFT, BAD_SFT), ("pretrain", GOOD_PRETRAIN, BAD_PRETRAIN)])
def test_training_is_strict_by_default_and_counts_what_it_skips(tmp_path, monkeypatch, capsys, kind, good, bad,
                                                                measured):
    path = tmp_path / f"{kind}.jsonl"
    numbers = mixed(path, good, bad)
    args = ["--data_path", str(path), *TINY, "--batch_size", "8", "--init", "none"]
    assert train_here(tmp_path, kind, *args, "--run_dir", "strict", monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert f"{path}:{numbers[0]}: " in err and f"({len(bad)} bad lines in all)" in err
    assert "--skip-bad-lines" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert of_kind(tmp_path / "strict", "end")[-1]["status"] == "failed"

    for attempt in ("built", "cached"):  # the second start reads the token cache and must still say it
        run = tmp_path / f"skip-{attempt}"
        assert train_here(tmp_path, kind, *args, "--skip_bad_lines", "--run_dir", run.name,
                          env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch) == 0
        text = f"skipping {len(bad)} bad line(s); first at line {numbers[0]}"
        assert text in capsys.readouterr().out
        assert of_kind(run, "start")[0]["samples"] == len(good)
        assert any(text in n for n in summarize(run).notes)
    measured.setdefault("9 malformed JSONL", []).append(
        f"{kind}: {len(bad)} bad kinds among {len(good)} good lines (BOM, CRLF, blank, no final newline): "
        f"{len(bad)}/{len(bad)} named by line in preview/stats; strict stops at line {numbers[0]}; skip mode trains "
        f"{len(good)} samples and reports {len(bad)} skipped")
