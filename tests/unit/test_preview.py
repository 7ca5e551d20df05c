"""dataset.preview: one sample rendered, tokenized and masked exactly as the datasets train on it."""
import json

import numpy as np
import pytest
from testkit import conv

from dataset.jsonl import JsonlFile
from dataset.preview import default_tokenizer_dir, head_lines, sample_from_raw, token_view


def test_sample_messages_fill_roles_and_keep_cjk_and_emoji():
    raw = json.dumps({"conversations": [{"role": "system", "content": "你是猫"}, {"content": "喵？😺"},
                                        {"content": "喵！🐱"}]}, ensure_ascii=False).encode()
    s = sample_from_raw(raw, 4, "sft")
    assert s.ok and s.line_number == 5
    assert [m["role"] for m in s.messages] == ["system", "user", "assistant"]
    assert s.messages[2]["content"] == "喵！🐱"
    p = sample_from_raw('{"text": "长文本 📚"}'.encode(), 0, "pretrain")
    assert p.messages == [{"role": "text", "content": "长文本 📚"}]


def test_bad_and_blank_lines_carry_the_reason_and_the_raw_text():
    s = sample_from_raw(b'{"conversations": []}', 2, "sft")
    assert not s.ok and s.error == "empty conversation" and s.raw == '{"conversations": []}'
    s = sample_from_raw(b'{"text": "caf\xe9"}', 0, "pretrain")
    assert "UTF-8" in s.error and "\ufffd" in s.raw
    assert sample_from_raw(b"  ", 0, "sft").error.startswith("blank")
    with pytest.raises(ValueError, match="line 3"):
        token_view(sample_from_raw(b"{oops", 2, "sft"), None, 64)


@pytest.mark.parametrize("max_len", [24, 40, 200])
def test_token_view_equals_sftdataset_ids_and_mask(tmp_path, tiny_tokenizer, max_len):
    from dataset import SFTDataset

    rows = [conv("你好呀", "你好！我是助手 😀"), conv("只有问题"), conv("a", "b", "c", "训练数据" * 6)]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ds = SFTDataset(path, tiny_tokenizer, max_length=max_len)
    jsonl = JsonlFile(path)
    for i in range(len(rows)):
        tv = token_view(sample_from_raw(jsonl.line(i), i, "sft"), tiny_tokenizer, max_len)
        X, Y, loss_mask = ds[i]
        shown = [p for p in tv.pieces if not p.cut]
        ids = [p.id for p in shown]
        padded = ids + [tiny_tokenizer.pad_token_id] * (max_len - len(ids))
        assert padded[:-1] == X.tolist() and padded[1:] == Y.tolist()
        trained = [p.trained for p in shown] + [False] * (max_len - len(shown))
        assert trained[1:] == [bool(v) for v in loss_mask.tolist()]
        assert tv.n_trained == int(loss_mask.sum())
        full = tiny_tokenizer.encode(ds.prompt(i))
        assert tv.n_tokens == len(full) and tv.n_truncated == max(0, len(full) - max_len)
        assert [p.id for p in tv.pieces if p.cut] == full[max_len:]
        # The token texts put back together are the rendered prompt, CJK and emoji included.
        assert "".join(p.text for p in tv.pieces if not p.pad) == tv.prompt == ds.prompt(i)


def test_truncation_reports_the_reply_tokens_it_drops(tmp_path, tiny_tokenizer):
    raw = conv("问", "很长的回答" * 20).encode()
    tv = token_view(sample_from_raw(raw, 0, "sft"), tiny_tokenizer, 32)
    cut = [p for p in tv.pieces if p.cut]
    assert len(cut) == tv.n_truncated > 0 and tv.n_kept == 32
    assert tv.n_trained_lost == sum(p.would_train for p in cut) > 0
    assert not any(p.trained for p in cut)


def test_conversation_ending_on_a_user_turn_trains_padding_like_the_reference(tiny_tokenizer):
    tv = token_view(sample_from_raw(conv("只有问题").encode(), 0, "sft"), tiny_tokenizer, 160)
    assert tv.n_truncated == 0
    assert tv.n_pad_trained > 0 and tv.n_trained == tv.n_pad_trained
    assert all(p.pad and p.id == tiny_tokenizer.pad_token_id for p in tv.pieces[tv.n_kept:])


def test_pretrain_view_masks_everything_but_the_first_position(tmp_path, tiny_tokenizer):
    from dataset import PretrainDataset

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": "猫和狗 🐱🐶 hello"}, ensure_ascii=False) + "\n", encoding="utf-8")
    tv = token_view(sample_from_raw(JsonlFile(path).line(0), 0, "pretrain"), tiny_tokenizer, 8)
    _, _, loss_mask = PretrainDataset(path, tiny_tokenizer, max_length=8)[0]
    assert tv.n_trained == int(loss_mask.sum()) == 7
    assert tv.pieces[0].text == "<s>" and tv.pieces[0].special and not tv.pieces[0].trained
    assert tv.pieces[-1].text == "</s>" and tv.pieces[-1].cut and tv.pieces[-1].would_train


def test_reference_cases_mask_matches_expected(shared_dir, ref_tokenizer):
    import torch

    expected = torch.load(shared_dir / "reference" / "sft_cases_expected.pt", weights_only=True)
    jsonl = JsonlFile(shared_dir / "reference" / "sft_cases.jsonl")
    for i in range(len(jsonl)):
        tv = token_view(sample_from_raw(jsonl.line(i), i, "sft"), ref_tokenizer, 128)
        trained = np.zeros(128, dtype=np.int64)
        trained[:len([p for p in tv.pieces if not p.cut])] = [p.trained for p in tv.pieces if not p.cut]
        assert trained[1:].tolist() == expected["loss_mask"][i].tolist(), i
        assert tv.prompt == expected["prompts"][i]


def test_head_lines_reads_the_first_page_without_an_index(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "\xe4\xbd\xa0"}\r\n' + b'{"text": "b"}\r\n' * 10)
    lines, whole = head_lines(path)
    assert whole and len(lines) == 11 and lines[0] == '{"text": "你"}'.encode() and lines[1] == b'{"text": "b"}'
    lines, whole = head_lines(path, max_lines=3)
    assert not whole and len(lines) == 3
    lines, whole = head_lines(path, max_bytes=40)  # a cut last line is not returned
    assert not whole and lines == ['{"text": "你"}'.encode(), b'{"text": "b"}']


def test_default_tokenizer_prefers_the_project_tokenizer(tmp_path):
    assert (default_tokenizer_dir(tmp_path) / "tokenizer.json").is_file()  # bundled demo tokenizer
    local = tmp_path / "model" / "minimind_tokenizer"
    local.mkdir(parents=True)
    (local / "tokenizer.json").write_text("{}")
    assert default_tokenizer_dir(tmp_path) == local


def test_max_pieces_limits_the_pieces_not_the_counts(tiny_tokenizer):
    sample = sample_from_raw(conv("问", "很长的回答" * 50).encode(), 0, "sft")
    full = token_view(sample, tiny_tokenizer, 96)
    part = token_view(sample, tiny_tokenizer, 96, max_pieces=120)
    assert len(part.pieces) == 120 < len(full.pieces)
    assert part.pieces == full.pieces[:120]
    assert (part.n_tokens, part.n_trained, part.n_truncated, part.n_trained_lost) == \
        (full.n_tokens, full.n_trained, full.n_truncated, full.n_trained_lost)
