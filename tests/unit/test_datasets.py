import json

import numpy as np
import pytest
import torch
from testkit import conv

from dataset import DataError, PretrainDataset, SFTDataset
from dataset.jsonl import JsonlFile
from minimind_tui.demo import demo_tokenizer_dir
from model import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_dir(demo_tokenizer_dir())


def write(path, lines, mode="w"):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_sft_matches_reference_outputs(shared_dir, ref_tokenizer):
    expected = torch.load(shared_dir / "reference" / "sft_cases_expected.pt", weights_only=True)
    ds = SFTDataset(shared_dir / "reference" / "sft_cases.jsonl", ref_tokenizer, max_length=expected["max_length"])
    assert len(ds) == 20
    for i in range(20):
        X, Y, mask = ds[i]
        assert torch.equal(X, expected["X"][i]) and torch.equal(Y, expected["Y"][i])
        assert torch.equal(mask, expected["loss_mask"][i]), i
        assert ds.prompt(i) == expected["prompts"][i]


def test_unpadded_encoding_gives_the_same_sample(shared_dir, ref_tokenizer):
    """Padding ds.encode(i) back to max_length reproduces ds[i]: batches padded only to their longest
    sample compute the reference's loss."""
    ds = SFTDataset(shared_dir / "reference" / "sft_cases.jsonl", ref_tokenizer, max_length=128)
    for i in range(len(ds)):
        ids, mask = ds.encode(i)
        X, Y, m = ds[i]
        n = len(ids)
        assert torch.equal(X[: n - 1], torch.from_numpy(ids[:-1]))
        assert torch.equal(m[: n - 1], torch.from_numpy(mask[1:].astype(np.int64)))
        assert m[n - 1:].sum() == 0


def test_sft_mask_covers_reply_and_end_tokens(tmp_path, tok):
    ds = SFTDataset(write(tmp_path / "s.jsonl", [conv("Hello", "Paris.")]), tok, max_length=128)
    X, Y, mask = ds[0]
    trained = tok.decode(Y[mask.bool()].tolist())
    # The reference's rule: the reply, then "</s>" and the "\n" after it; nothing of the prompt.
    assert trained == "Paris.</s>\n"


def test_system_role_is_rendered_as_system_prompt(tmp_path, tok):
    line = json.dumps({"conversations": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "hi"},
                                         {"role": "assistant", "content": "ok"}]})
    ds = SFTDataset(write(tmp_path / "s.jsonl", [line]), tok, max_length=64)
    assert ds.prompt(0).startswith("<s>system\nBe brief.</s>\n<s>user\nhi")


def test_truncation_and_padding(tmp_path, tok):
    ds = SFTDataset(write(tmp_path / "s.jsonl", [conv("q " * 50, "a " * 50), conv("x", "y")]), tok, max_length=32)
    X, Y, mask = ds[0]
    assert X.shape == (31,) and Y.shape == (31,)
    X2, Y2, mask2 = ds[1]
    assert (Y2[-5:] == tok.pad_token_id).all()


def test_pretrain_sample(tmp_path, tok):
    ds = PretrainDataset(write(tmp_path / "p.jsonl", ['{"text": "中国的首都是北京。"}']), tok, max_length=16)
    X, Y, mask = ds[0]
    ids = tok.encode("<s>中国的首都是北京。</s>")
    assert X[0].item() == tok.bos_token_id
    assert Y[: len(ids) - 1].tolist() == ids[1:]
    assert mask.sum().item() == len(ids) - 1  # every real token, no padding
    assert (Y[len(ids) - 1:] == 0).all()


def test_bom_and_crlf_are_read(tmp_path, tok):
    p = tmp_path / "p.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"text": "a"}\r\n{"text": "b"}\r\n')
    ds = PretrainDataset(p, tok, max_length=8)
    assert len(ds) == 2 and ds.sample(0)["text"] == "a" and ds.sample(1)["text"] == "b"


@pytest.mark.parametrize("line,kind,reason", [
    ('{"text": "ok"', "pretrain", "invalid JSON"),
    ('{"txt": "x"}', "pretrain", 'missing "text"'),
    ('{"text": 5}', "pretrain", '"text" must be a string'),
    ('[1, 2]', "pretrain", "expected a JSON object"),
    ('{"conversations": []}', "sft", "empty conversation"),
    ('{"conversations": "hi"}', "sft", '"conversations" must be a list'),
    ('{"text": "x"}', "sft", 'missing "conversations" key (this looks like pretraining data'),
    ('{"conversations": [{"role": "assistant", "content": "x"}]}', "sft", "roles out of order"),
    ('{"conversations": [{"role": "user", "content": 3}]}', "sft", '"content" must be a string'),
    ('{"conversations": [{"role": "bot", "content": "x"}]}', "sft", "unknown role"),
])
def test_bad_lines_are_named_with_file_and_line(tmp_path, tok, line, kind, reason):
    good = '{"text": "fine"}' if kind == "pretrain" else conv("a", "b")
    p = write(tmp_path / "d.jsonl", [good, line, good])
    cls = PretrainDataset if kind == "pretrain" else SFTDataset
    with pytest.raises(DataError) as err:
        cls(p, tok, max_length=16)
    msg = str(err.value)
    assert msg.startswith(f"{p}:2: ") and reason in msg and "--skip-bad-lines" in msg


def test_non_utf8_line(tmp_path, tok):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid UTF-8"):
        PretrainDataset(p, tok, max_length=16)


def test_skip_bad_lines_counts_and_keeps_the_rest(tmp_path, tok):
    p = write(tmp_path / "d.jsonl", ['{"text": "a"}', "garbage", '{"text": 1}', '{"text": "b"}'])
    with pytest.raises(DataError, match=r"d.jsonl:2: .*\(2 bad lines in all\)"):
        PretrainDataset(p, tok, max_length=16)
    reports = []
    ds = PretrainDataset(p, tok, max_length=16, skip_bad_lines=True, report=reports.append)
    assert [ds.sample(i)["text"] for i in range(len(ds))] == ["a", "b"]
    assert ds.line_number(1) == 4
    assert "skipping 2 bad line(s)" in reports[0]


def test_skip_bad_lines_fails_when_nothing_is_left(tmp_path, tok):
    p = write(tmp_path / "d.jsonl", ["nope", "{}"])
    with pytest.raises(DataError, match="no usable pretrain samples"):
        PretrainDataset(p, tok, max_length=16, skip_bad_lines=True, report=lambda m: None)


def test_empty_and_missing_files(tmp_path, tok):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        PretrainDataset(tmp_path / "empty.jsonl", tok)
    with pytest.raises(DataError, match="missing.jsonl: no such file"):
        SFTDataset(tmp_path / "missing.jsonl", tok)
    folder = tmp_path / "dataset"
    folder.mkdir()
    with pytest.raises(DataError, match="dataset: a folder, not a file; it holds no .jsonl file"):
        SFTDataset(folder, tok)
    for name in ("b.jsonl", "a.jsonl", "notes.txt"):
        (folder / name).write_text("{}\n")
    with pytest.raises(DataError, match=r"dataset: a folder, not a file; pick a \.jsonl in it: a\.jsonl, b\.jsonl$"):
        SFTDataset(folder, tok)


def test_blank_lines_are_not_samples(tmp_path, tok):
    p = write(tmp_path / "d.jsonl", ['{"text": "a"}', "", "   ", '{"text": "b"}'])
    assert len(PretrainDataset(p, tok, max_length=8)) == 2


def test_index_random_access_and_cache(tmp_path):
    p = tmp_path / "big.jsonl"
    rows = [json.dumps({"text": f"行 {i} " * (i % 7)}, ensure_ascii=False) for i in range(5000)]
    write(p, rows)
    f = JsonlFile(p)
    assert len(f) == 5000
    assert json.loads(f.line(4321))["text"] == json.loads(rows[4321])["text"]
    again = JsonlFile(p)  # second open reads the cached index
    assert np.array_equal(again.offsets, f.offsets)
    write(p, rows[:10])  # rewritten file: new fingerprint, new index
    assert len(JsonlFile(p)) == 10


def test_an_empty_cached_index_is_rebuilt(tmp_path):
    """The index cache is written without fsync: after a power loss it may be empty; that is a rebuild."""
    from dataset.jsonl import cache_dir

    p = write(tmp_path / "d.jsonl", ['{"text": "a"}', '{"text": "b"}'])
    cached = cache_dir() / "index" / f"{JsonlFile(p).fingerprint}.npy"
    cached.write_bytes(b"")
    assert len(JsonlFile(p)) == 2 and cached.stat().st_size > 0


def test_last_line_without_newline(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"text": "a"}\n{"text": "b"}')
    f = JsonlFile(p)
    assert len(f) == 2 and f.line(1) == b'{"text": "b"}'


def test_a_file_of_the_other_kind_does_not_suggest_skipping_every_line(tmp_path, tok):
    sft = write(tmp_path / "sft.jsonl", ['{"conversations": [{"role": "user", "content": "hi"}]}'] * 3)
    with pytest.raises(DataError) as caught:
        PretrainDataset(sft, tok, max_length=16)
    message = str(caught.value)
    assert "use train sft" in message and "no line of this file is a pretrain sample (3 bad)" in message
    assert "--skip-bad-lines" not in message
