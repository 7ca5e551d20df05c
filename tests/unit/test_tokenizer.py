import json

import pytest

from model import Tokenizer
from model.tokenizer import DEFAULT_SYSTEM_PROMPT, TokenizerError, render_chat


def test_reference_tokenizer_cases(shared_dir, ref_tokenizer):
    cases = json.loads((shared_dir / "reference" / "tokenizer_cases.json").read_text())
    for case in cases["cases"]:
        ids = ref_tokenizer.encode(case["text"])
        assert ids == case["ids"], case["text"]
        assert ref_tokenizer.decode(ids) == case["decoded"]
        assert ref_tokenizer.decode(ids, skip_special_tokens=True) == case["decoded_skip_special_tokens"]


def test_reference_special_ids(ref_tokenizer):
    t = ref_tokenizer
    assert (t.pad_token_id, t.bos_token_id, t.eos_token_id, t.vocab_size) == (0, 1, 2, 6400)


def test_reference_chat_template_cases(shared_dir, ref_tokenizer):
    cases = json.loads((shared_dir / "reference" / "chat_template_cases.json").read_text())["cases"]
    for case in cases:
        for flag in (True, False):  # the template ignores the flag, like MiniMind's
            prompt = ref_tokenizer.apply_chat_template(case["messages"], add_generation_prompt=flag)
            assert prompt == case["prompt"]
        assert ref_tokenizer.encode(case["prompt"]) == case["ids"]


def test_chat_template_with_and_without_system():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert render_chat(msgs) == f"<s>system\n{DEFAULT_SYSTEM_PROMPT}</s>\n<s>user\nhi</s>\n<s>assistant\nyo</s>\n"
    sys_msgs = [{"role": "system", "content": "S"}] + msgs
    assert render_chat(sys_msgs) == "<s>system\nS</s>\n<s>user\nhi</s>\n<s>assistant\nyo</s>\n"


def test_token_bytes_rebuild_utf8(ref_tokenizer):
    text = "你好🙂 café"
    ids = ref_tokenizer.encode(text)
    assert b"".join(ref_tokenizer.token_bytes(i) for i in ids).decode("utf-8") == text


def test_missing_tokenizer_dir_is_clear(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        Tokenizer.from_dir(tmp_path)


def test_bundled_demo_tokenizer_loads():
    from minimind_tui.demo import demo_tokenizer_dir

    t = Tokenizer.from_dir(demo_tokenizer_dir())
    assert (t.pad_token_id, t.bos_token_id, t.eos_token_id) == (0, 1, 2)
    assert t.decode(t.encode("中国的首都是北京。 The capital is Paris.")) == "中国的首都是北京。 The capital is Paris."


def test_tokenizer_train_command(tmp_path):
    from minimind_tui.cli import main

    data = tmp_path / "d.jsonl"
    rows = [{"text": f"第{i}行 line {i} 的文字"} for i in range(200)]
    rows += [{"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "hello"}]}]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    assert main(["tokenizer", "train", "--data", str(data), "--vocab-size", "300", "--out", str(tmp_path / "tok")]) == 0
    tok = Tokenizer.from_dir(tmp_path / "tok")
    assert tok.vocab_size == 300
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    assert tok.encode("<s>user\n") [0] == 1
    assert tok.decode(tok.encode("第7行 line")) == "第7行 line"
    cfg = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert "chat_template" in cfg


def test_tokenizer_train_missing_file(tmp_path, capsys):
    from minimind_tui.cli import main

    assert main(["tokenizer", "train", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "t")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err
