"""The Dataset tab's state without an app: opening, the index arriving, moving, the token view and statistics."""
from __future__ import annotations

import json

import pytest

from dataset.jsonl import JsonlFile
from dataset.preview import head_lines
from dataset.stats import DatasetStats
from minimind_tui.app.dataset_browser import KIND_UNKNOWN, DatasetBrowser, StatsJob, TokensJob

TOKENIZER = object()  # the browser only hands the tokenizer to jobs


def write(path, rows):
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def sft(text):
    return json.dumps({"conversations": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]})


def opened(browser, path, kind=None):
    """open() then what the open worker reports: the head, then the index."""
    browser.open(path, kind)
    lines, whole = head_lines(browser.path, max_lines=2)
    shown = browser.opened(lines, whole)
    if shown:
        browser.select(0)
    return shown


def test_opening_shows_line_one_from_the_head_and_every_line_once_indexed(tmp_path):
    path = write(tmp_path / "chat.jsonl", [sft(f"q{i}") for i in range(5)])
    b = DatasetBrowser(tmp_path)
    assert opened(b, "chat.jsonl")  # relative to the root
    assert (b.path, b.kind, b.sample.messages[0]["content"]) == (path, "sft", "q0")
    assert (b.n_lines, b.reachable, b.status(), b.position()) == (None, 2, "chat.jsonl · sft · 2+ lines · indexing",
                                                                  "line 1 of ?")
    assert b.indexing(50, 100) == "indexing 50% (first lines shown meanwhile)"
    assert b.unavailable(4) == "line 4 is not available: the index is still being built"
    assert not b.indexed(JsonlFile(path))  # line 1 already shown with its kind: nothing to redo
    assert b.indexing(100, 100) is None
    assert (b.n_lines, b.unavailable(4), b.unavailable(6)) == (5, None, "line 6 is not available: the file has 5 lines")
    assert b.status() == f"chat.jsonl · sft · 5 lines · {path.stat().st_size:,} bytes"


def test_a_result_about_a_file_no_longer_open_is_not_current(tmp_path):
    write(tmp_path / "a.jsonl", [sft("a")])
    b = DatasetBrowser(tmp_path)
    b.open("a.jsonl")
    first = b.gen
    b.open("a.jsonl", "pretrain")
    assert not b.is_current(first) and b.is_current(b.gen) and b.kind_choice == "pretrain"
    assert (b.kind, b.sample, b.jsonl, b.head) == (None, None, None, [])  # nothing of the previous open is kept


def test_a_kind_not_told_by_the_head_is_detected_from_the_index(tmp_path):
    path = write(tmp_path / "late.jsonl", ["not json", "[1]", json.dumps({"text": "第一"})])
    b = DatasetBrowser(tmp_path)
    b.open(path)
    b.opened([b"not json", b"[1]"], whole=False)
    assert b.kind is None and b.select(0) == KIND_UNKNOWN + "\n\nnot json" and b.sample is None
    assert b.indexed(JsonlFile(path)) and b.kind == "pretrain"  # shown again, now as a sample
    b.select(2)
    assert b.sample.messages[0]["content"] == "第一"


def test_a_first_line_longer_than_the_head_waits_for_the_index(tmp_path):
    b = DatasetBrowser(tmp_path)
    b.open(write(tmp_path / "x.jsonl", [json.dumps({"text": "x"})]))
    assert not b.opened([], whole=False)
    assert b.indexed(JsonlFile(b.path))  # nothing shown yet: show it now


def test_moving_stops_at_both_ends(tmp_path, monkeypatch):
    from minimind_tui.app import dataset_browser

    b = DatasetBrowser(tmp_path)
    assert b.step(1) is None and b.random_line() is None  # no file
    path = write(tmp_path / "p.jsonl", [json.dumps({"text": str(i)}) for i in range(3)])
    opened(b, path)
    b.indexed(JsonlFile(path))
    assert (b.step(-1), b.step(1)) == (None, 1)
    b.select(2)
    assert (b.step(1), b.step(-1)) == (None, 1)
    monkeypatch.setattr(dataset_browser.random, "randrange", lambda n: n - 1)
    assert b.random_line() == 2


def test_the_token_view_tokenises_only_a_visible_valid_sample_and_knows_a_stale_result(tmp_path):
    path = write(tmp_path / "c.jsonl", [sft("q"), "{broken"])
    b = DatasetBrowser(tmp_path)
    assert b.tokens(visible=True) == "No sample selected."
    opened(b, path)
    assert b.tokens(visible=True) == "loading the tokenizer …"
    assert b.tokenizer_loaded(None, "no tokenizer.json in tok", None)
    assert b.tokens(visible=True) == "no tokenizer.json in tok"
    b.tokenizer_loaded(TOKENIZER, None, None)
    assert b.tokens(visible=False) == ""
    job = b.tokens(visible=True)
    assert isinstance(job, TokensJob) and (job.key, job.sample, job.tokenizer, job.max_seq_len) == (
        (b.gen, 0, 512), b.sample, TOKENIZER, 512)
    assert b.tokens_current(job.key)
    assert b.set_max_seq_len(64) and not b.set_max_seq_len(64) and not b.set_max_seq_len(1)
    assert not b.tokens_current(job.key)
    b.select(1)
    assert b.tokens(visible=True).startswith("line 2 is not a sample: invalid JSON")


def test_statistics_start_once_per_file_kind_length_and_tokenizer(tmp_path):
    path = write(tmp_path / "c.jsonl", [sft("q")])
    b = DatasetBrowser(tmp_path)
    assert b.stats() is None  # no file
    opened(b, path)
    assert b.stats() == "Waiting for the index … statistics start when it is built."
    b.indexed(JsonlFile(path))
    assert b.stats() == "Loading the tokenizer …"
    b.tokenizer_loaded(TOKENIZER, None, None)
    job = b.stats()
    assert isinstance(job, StatsJob) and (job.gen, job.kind, job.tokenizer, job.max_seq_len) == (
        b.gen, "sft", TOKENIZER, 512)
    assert b.stats() is None  # running or shown: the same figures
    assert isinstance(b.stats(force=True), StatsJob)  # the Compute button
    b.set_max_seq_len(96)
    assert b.stats().max_seq_len == 96
    b.stats_done(DatasetStats(path=str(path), kind="sft", max_seq_len=96, complete=False))
    assert isinstance(b.stats(), StatsJob)  # a cancelled scan is not kept: showing the view again restarts it
    b.stats_done(DatasetStats(path=str(path), kind="sft", max_seq_len=96, complete=True))
    assert b.stats() is None


def test_statistics_without_a_kind_ask_for_one(tmp_path):
    path = write(tmp_path / "u.jsonl", ["[1]"])
    b = DatasetBrowser(tmp_path)
    opened(b, path)
    b.indexed(JsonlFile(path))
    assert b.stats() == "Choose the kind (pretrain, sft or dpo) above first."


def test_another_tokenizer_drops_the_loaded_one_and_a_late_load_of_the_old(tmp_path):
    b = DatasetBrowser(tmp_path)
    assert b.needs_tokenizer
    assert b.use_tokenizer("tok") and b.tokenizer_dir == tmp_path / "tok"
    assert not b.use_tokenizer(tmp_path / "tok")  # the same folder
    b.tokenizer_loaded(TOKENIZER, None, tmp_path / "tok")
    assert not b.needs_tokenizer
    b.use_tokenizer("other")
    assert b.needs_tokenizer
    assert not b.tokenizer_loaded(TOKENIZER, None, tmp_path / "tok") and b.tokenizer is None


def test_paths_as_the_user_thinks_of_them(tmp_path):
    from minimind_tui.demo import demo_tokenizer_dir

    b = DatasetBrowser(tmp_path)
    assert b.field_text(tmp_path / "dataset" / "a.jsonl") == "dataset/a.jsonl"
    assert b.field_text(tmp_path.parent / "a.jsonl") == str(tmp_path.parent / "a.jsonl")
    assert b.shown_path(tmp_path / "tok") == "tok"
    assert b.shown_path(demo_tokenizer_dir()) == "bundled demo tokenizer"


@pytest.mark.parametrize("kind", ["pretrain", "sft"])
def test_a_chosen_kind_is_used_whatever_the_lines_look_like(tmp_path, kind):
    path = write(tmp_path / "c.jsonl", [sft("q")])
    b = DatasetBrowser(tmp_path)
    opened(b, path, kind)
    assert b.kind == kind and b.sample.ok == (kind == "sft")
