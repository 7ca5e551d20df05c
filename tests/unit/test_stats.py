"""dataset.stats: bad lines, duplicates, token statistics that agree with the datasets the trainer uses."""
import json

import numpy as np
import pytest
from testkit import conv

from dataset import DataError
from dataset.jsonl import JsonlFile
from dataset.stats import BATCH, bad_category, compute_stats, detect_file_kind, detect_kind


def write_bytes(path, lines: list[bytes], eol=b"\n"):
    path.write_bytes(b"".join(line + eol for line in lines))
    return path


BAD_SFT = [  # (line, category) for every kind of bad input
    (b"{not json", "json"),
    (b"[1, 2]", "json"),
    (b'{"text": "pretraining line in an SFT file"}', "missing_key"),
    (b'{"conversations": "hello"}', "wrong_type"),
    (b'{"conversations": [{"role": "user", "content": 5}]}', "wrong_type"),
    (b'{"conversations": []}', "empty_conversation"),
    (conv("a", "b", roles=["assistant", "user"]).encode(), "role_order"),
    (conv("a", "b", roles=["user", "robot"]).encode(), "role_order"),
    ('{"conversations": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1"), "encoding"),
]


def test_every_bad_input_kind_is_counted_with_its_line_and_reason(tmp_path):
    good = conv("你好", "你好！有什么可以帮你？").encode()
    lines = [good] + [b for b, _ in BAD_SFT] + [b"", good]
    st = compute_stats(JsonlFile(write_bytes(tmp_path / "bad.jsonl", lines)), "sft")
    assert st.lines == len(lines) and st.complete
    assert st.samples == 2 and st.blank_lines == 1
    assert st.bad_lines == len(BAD_SFT)
    assert [b.line_number for b in st.bad] == list(range(2, 2 + len(BAD_SFT)))
    assert [bad_category(b.reason) for b in st.bad] == [c for _, c in BAD_SFT]
    assert st.role_order_problems == 2
    assert st.bad_by_category["json"] == 2 and st.bad_by_category["encoding"] == 1
    assert "UTF-8" in st.bad[-1].reason and "out of order" in st.bad[6].reason
    assert st.duplicates == 1 and st.duplicate_examples == [(len(lines), 1)]


def test_bom_and_crlf_lines_are_good_samples(tmp_path):
    lines = [b"\xef\xbb\xbf" + conv("q1", "a1").encode(), conv("q2", "a2").encode()]
    st = compute_stats(JsonlFile(write_bytes(tmp_path / "crlf.jsonl", lines, eol=b"\r\n")), "sft")
    assert (st.samples, st.bad_lines, st.duplicates) == (2, 0, 0)


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        JsonlFile(tmp_path / "empty.jsonl")


def test_duplicates_ignore_key_order_and_name_the_first_copy(tmp_path):
    a = json.dumps({"text": "同一句话", "id": 1}, ensure_ascii=False).encode()
    a_reordered = json.dumps({"id": 1, "text": "同一句话"}, ensure_ascii=False).encode()
    b = b'{"text": "other"}'
    st = compute_stats(JsonlFile(write_bytes(tmp_path / "d.jsonl", [a, b, a_reordered, b, a])), "pretrain")
    assert st.duplicates == 3 and st.duplicate_groups == 2
    assert st.duplicate_examples == [(3, 1), (4, 2), (5, 1)]


def test_kind_detection_from_the_first_good_line(tmp_path):
    assert detect_kind([b"{bad", b'{"text": "x"}']) == "pretrain"
    assert detect_kind([b"[]", conv("a", "b").encode()]) == "sft"
    assert detect_kind([b"{bad", b'{"other": 1}']) is None
    path = write_bytes(tmp_path / "k.jsonl", [b"oops", conv("a", "b").encode()])
    assert detect_file_kind(JsonlFile(path)) == "sft"


def test_token_statistics_equal_what_sftdataset_trains_on(tmp_path, tiny_tokenizer):
    """Lengths, truncation and trained-token counts agree with SFTDataset's (X, Y, loss_mask)."""
    from dataset import SFTDataset

    rows = [conv("你好", "你好！"), conv("讲个长故事" * 8, "从前有座山，山里有座庙。" * 10),
            conv("only a question"),  # ends on a user turn
            conv("a", "b", "c", "d"), conv("😀 emoji", "🐱🐶")]
    path = tmp_path / "sft.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    max_len = 48
    st = compute_stats(JsonlFile(path), "sft", tiny_tokenizer, max_seq_len=max_len, throughput=100.0)
    ds = SFTDataset(path, tiny_tokenizer, max_length=max_len)
    masks = [int(ds[i][2].sum()) for i in range(len(ds))]
    lengths = [len(tiny_tokenizer.encode(ds.prompt(i))) for i in range(len(ds))]
    assert st.trained_tokens_per_epoch == sum(masks)
    assert st.zero_trained == masks.count(0)
    assert st.truncated == sum(n > max_len for n in lengths) >= 1
    assert st.truncated_tokens == sum(max(0, n - max_len) for n in lengths)
    assert st.tokens_per_epoch == sum(min(n, max_len) for n in lengths)
    assert st.padded_tokens_per_epoch == len(rows) * max_len
    assert st.lengths.max == max(lengths) and st.lengths.min == min(lengths)
    assert sum(b["count"] for b in st.histogram) == len(rows)
    for b in st.histogram:
        assert b["count"] == sum(b["lo"] <= n < b["hi"] for n in lengths)
    assert st.seconds_per_epoch == pytest.approx(st.tokens_per_epoch / 100.0)


def test_pretrain_token_statistics(tmp_path, tiny_tokenizer):
    from dataset import PretrainDataset

    texts = ["你好，世界！", "Hello world " * 30, "猫 🐱"]
    path = tmp_path / "pre.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    st = compute_stats(JsonlFile(path), "pretrain", tiny_tokenizer, max_seq_len=32)
    ds = PretrainDataset(path, tiny_tokenizer, max_length=32)
    assert st.trained_tokens_per_epoch == sum(int(ds[i][2].sum()) for i in range(len(ds)))
    assert st.truncated == 1 and st.zero_trained == 0


def test_reference_cases_truncation_and_zero_mask(shared_dir, ref_tokenizer):
    """sft_cases at max_length 128: 11 truncated, one all-zero mask, the same total loss positions."""
    import torch

    expected = torch.load(shared_dir / "reference" / "sft_cases_expected.pt", weights_only=True)
    st = compute_stats(JsonlFile(shared_dir / "reference" / "sft_cases.jsonl"), "sft", ref_tokenizer,
                       max_seq_len=128)
    untruncated = [int(n) for n in expected["untruncated_token_lengths"]]
    assert st.truncated == sum(n > 128 for n in untruncated) == 11
    assert st.zero_trained == 1
    assert st.trained_tokens_per_epoch == int(expected["loss_mask"].sum())
    assert st.lengths.max == max(untruncated)


def test_cancel_stops_between_batches_and_keeps_partial_counts(tmp_path):
    lines = [json.dumps({"text": f"line {i}"}).encode() for i in range(3 * BATCH)]
    jsonl = JsonlFile(write_bytes(tmp_path / "c.jsonl", lines))
    seen = []
    st = compute_stats(jsonl, "pretrain", progress=lambda done, total: seen.append((done, total)),
                       should_stop=lambda: len(seen) >= 1)
    assert not st.complete and st.processed_lines == BATCH and st.samples == BATCH
    assert seen == [(BATCH, 3 * BATCH)]


def test_generated_large_file_progress_and_counts(tmp_path):
    """A generated file of 30k lines with known defects every 1000 lines; progress reaches the end."""
    n = 30_000
    with open(tmp_path / "big.jsonl", "wb") as f:
        for i in range(n):
            if i % 1000 == 999:
                f.write(b'{"text": 1}\n')
            elif i % 5000 == 2500:  # 6 copies: 5 duplicates
                f.write(b'{"text": "repeated"}\n')
            else:
                f.write(json.dumps({"text": f"第{i}行 line {i}"}, ensure_ascii=False).encode() + b"\n")
    seen = []
    st = compute_stats(JsonlFile(tmp_path / "big.jsonl"), "pretrain", progress=lambda d, t: seen.append(d))
    assert st.lines == n and st.bad_lines == 30 and st.bad_by_category == {"wrong_type": 30}
    assert st.bad[0].line_number == 1000
    assert st.duplicates == 5 and st.samples == n - 30
    assert seen[-1] == n and seen == sorted(seen) and len(seen) > 100


def test_to_dict_is_json_serialisable(tmp_path, tiny_tokenizer):
    path = write_bytes(tmp_path / "j.jsonl", [conv("你好", "好").encode(), b"{bad"])
    d = compute_stats(JsonlFile(path), "sft", tiny_tokenizer, max_seq_len=16).to_dict()
    back = json.loads(json.dumps(d, ensure_ascii=False))
    assert back["bad"] == [{"line_number": 2, "reason": back["bad"][0]["reason"]}]
    assert back["lengths"]["max"] > 0 and back["samples"] == 1


def test_histogram_covers_the_range_in_round_bins():
    from dataset.stats import _histogram

    bins = _histogram(np.array([230, 231, 250, 599, 600]))
    assert bins[0]["lo"] <= 230 < bins[0]["hi"] and bins[-1]["lo"] <= 600 < bins[-1]["hi"]
    assert len({b["hi"] - b["lo"] for b in bins}) == 1 and bins[0]["hi"] - bins[0]["lo"] in (1, 2, 5, 10, 20, 50)
    assert sum(b["count"] for b in bins) == 5 and len(bins) <= 17
    assert _histogram(np.array([23, 23, 23])) == [{"lo": 23, "hi": 24, "count": 3}]


def test_a_conversation_ending_on_a_user_turn_is_flagged(tmp_path, tiny_tokenizer):
    """The reference's mask runs from the last "<s>assistant" to max_seq_len when no reply follows: it
    trains the model to emit padding. Such samples are counted and listed."""
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([conv("问", "答"), conv("only a question"), conv("a", "b", "c")]) + "\n",
                    encoding="utf-8")
    st = compute_stats(JsonlFile(path), "sft", tiny_tokenizer, max_seq_len=200)
    assert st.pad_trained == 2 and st.pad_trained_examples == [2, 3] and st.zero_trained == 0
