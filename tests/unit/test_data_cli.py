"""`minimind-tui data inspect|validate`: JSON for scripts, readable reports, one-line errors."""
import json

import pytest
from testkit import conv

from minimind_tui.cli import main


@pytest.fixture
def sft_file(tmp_path):
    rows = [conv("你好", "你好！😀"), "{broken", conv("讲个故事", "从前有座山。" * 30),
            conv("a", "b", roles=["assistant", "user"]), conv("你好", "你好！😀")]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_json_has_the_statistics(capsys, sft_file, tiny_tokenizer):
    rc, out, _ = run(capsys, "data", "inspect", str(sft_file), "--max-seq-len", "128",
                     "--tokenizer", str(tiny_tokenizer.path), "--throughput", "1000", "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["kind"] == "sft" and d["lines"] == 5 and d["samples"] == 3
    assert [(b["line_number"], "invalid JSON" in b["reason"] or "out of order" in b["reason"]) for b in d["bad"]] \
        == [(2, True), (4, True)]
    assert d["role_order_problems"] == 1
    assert d["duplicates"] == 1 and d["duplicate_examples"] == [{"line": 5, "first": 1}]
    assert d["truncated"] == 1 and d["lengths"]["max"] > 128
    assert d["seconds_per_epoch"] == pytest.approx(d["tokens_per_epoch"] / 1000)
    assert d["tokenizer"] == str(tiny_tokenizer.path)


def test_inspect_report_names_bad_lines_and_draws_the_histogram(capsys, sft_file, tiny_tokenizer):
    rc, out, _ = run(capsys, "data", "inspect", str(sft_file), "--max-seq-len", "128",
                     "--tokenizer", str(tiny_tokenizer.path))
    assert rc == 0
    assert f"{sft_file}:2: invalid JSON" in out and f"{sft_file}:4: turn 1: roles out of order" in out
    assert "truncated: 1 samples" in out and "✂" in out and "█" in out


def test_inspect_without_tokens_and_default_tokenizer(capsys, sft_file, tmp_path):
    rc, out, _ = run(capsys, "data", "inspect", str(sft_file), "--no-tokens", "--json")
    assert rc == 0 and json.loads(out)["lengths"] is None
    rc, out, _ = run(capsys, "--root", str(tmp_path), "data", "inspect", str(sft_file), "--json")
    assert json.loads(out)["tokenizer"].endswith("demo_tokenizer")


def test_inspect_one_line_shows_tokens_and_mask(capsys, sft_file, tiny_tokenizer):
    rc, out, _ = run(capsys, "data", "inspect", str(sft_file), "--line", "3", "--max-seq-len", "128",
                     "--tokenizer", str(tiny_tokenizer.path), "--json")
    d = json.loads(out)
    assert rc == 0 and d["line"] == 3 and d["messages"][1]["content"].startswith("从前有座山")
    assert d["n_kept"] == 128 and d["n_truncated"] == d["n_tokens"] - 128 > 0
    assert d["n_trained"] == sum(p["trained"] for p in d["pieces"])
    rc, out, _ = run(capsys, "data", "inspect", str(sft_file), "--line", "1", "--tokenizer", str(tiny_tokenizer.path))
    assert rc == 0 and "[你好！😀</s>\n]" in out  # the reply, </s> and the newline after it are trained


@pytest.mark.parametrize("args, message", [
    (["--line", "99"], "out of range"),
    (["--line", "2"], ":2: invalid JSON"),
    (["--max-seq-len", "1"], "at least 2"),
])
def test_inspect_bad_requests_are_one_line(capsys, sft_file, args, message):
    rc, out, err = run(capsys, "data", "inspect", str(sft_file), *args)
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_validate_exit_status_and_lines(capsys, sft_file, tmp_path):
    rc, out, err = run(capsys, "data", "validate", str(sft_file))
    assert rc == 2
    assert out.splitlines()[0].startswith(f"{sft_file}:2: invalid JSON")
    assert f"{sft_file}:2:" in err and "2 bad of 5 lines" in err and "--skip-bad-lines" in err
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "你好"}\n{"text": "🐱"}\n', encoding="utf-8")
    rc, out, err = run(capsys, "data", "validate", str(good))
    assert rc == 0 and "2 pretrain samples, no bad lines" in out


def test_unknown_kind_empty_and_missing_files(capsys, tmp_path):
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"prompt": "x"}\n', encoding="utf-8")
    rc, _, err = run(capsys, "data", "inspect", str(odd))
    assert rc == 2 and "--kind" in err
    rc, out, _ = run(capsys, "data", "validate", str(odd), "--kind", "pretrain")
    assert rc == 2 and 'missing "text" key' in out
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    rc, _, err = run(capsys, "data", "inspect", str(empty))
    assert rc == 2 and "empty" in err
    rc, _, err = run(capsys, "data", "validate", str(tmp_path / "nope.jsonl"))
    assert rc == 2 and "no such file" in err
