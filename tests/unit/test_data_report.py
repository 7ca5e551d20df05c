"""`data inspect` and `data validate` say what the trainer really trains: padding is not counted as trained
(so trained tokens never exceed tokens), samples with no reply are named, and a pretraining report carries
no lines that only mean something for conversations."""
from __future__ import annotations

import json

from minimind_tui.cli import main


def conv(*turns):
    roles = ["user", "assistant"] * len(turns)
    return json.dumps({"conversations": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]},
                      ensure_ascii=False)


def sft_file(tmp_path):
    path = tmp_path / "s.jsonl"
    # Mostly conversations that end on a question: the reference's mask runs from there to max_seq_len.
    path.write_text("\n".join([conv("问", "答"), conv("only a question"), conv("another question"),
                               conv("a", "b", "c")]) + "\n", encoding="utf-8")
    return path


def inspect_json(capsys, path, tokenizer, *flags):
    assert main(["data", "inspect", str(path), "--tokenizer", str(tokenizer.path), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_trained_tokens_never_exceed_tokens_and_padding_is_counted_apart(tmp_path, tiny_tokenizer, capsys):
    st = inspect_json(capsys, sft_file(tmp_path), tiny_tokenizer, "--max-seq-len", "200")
    assert st["pad_trained_tokens_per_epoch"] > st["tokens_per_epoch"]  # what was counted as trained before
    assert 0 < st["trained_tokens_per_epoch"] <= st["tokens_per_epoch"]
    assert main(["data", "inspect", str(tmp_path / "s.jsonl"), "--tokenizer", str(tiny_tokenizer.path),
                 "--max-seq-len", "200"]) == 0
    report = capsys.readouterr().out
    assert f"{st['trained_tokens_per_epoch']:,} of them trained; the loss also counts " \
           f"{st['pad_trained_tokens_per_epoch']:,} padding positions" in report
    assert "samples with no reply (no assistant turn after the last user turn): 3 (lines 2, 3, 4)" in report


def test_one_sample_view_counts_padding_apart(tmp_path, tiny_tokenizer, capsys):
    assert main(["data", "inspect", str(sft_file(tmp_path)), "--tokenizer", str(tiny_tokenizer.path),
                 "--max-seq-len", "200", "--line", "2"]) == 0
    counts = capsys.readouterr().out.splitlines()[1]
    tokens = int(counts.split("tokens ")[1].split(",")[0])
    trained = int(counts.split("trained ")[1].split(",")[0])
    assert trained <= tokens and "padding positions the loss counts" in counts


def test_validate_reports_samples_with_no_reply(tmp_path, capsys):
    path = sft_file(tmp_path)
    assert main(["data", "validate", str(path)]) == 0  # valid lines: reported, not refused
    out = capsys.readouterr().out.splitlines()
    assert f"{path}:2: no reply: no assistant turn after the last user turn" in out
    assert f"{path}:4: no reply: no assistant turn after the last user turn" in out
    assert out[-1].endswith("4 sft samples, no bad lines, 3 with no reply")


def test_a_pretraining_report_has_no_conversation_lines(tmp_path, tiny_tokenizer, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ("hello world", "a tiny corpus")) + "\n")
    assert main(["data", "inspect", str(path), "--tokenizer", str(tiny_tokenizer.path)]) == 0
    report = capsys.readouterr().out
    assert "per epoch:" in report
    for sft_only in ("role-order", "reply", "reaches into padding", "padding positions"):
        assert sft_only not in report
