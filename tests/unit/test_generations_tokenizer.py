"""Tokenizers and chat templates of every MiniMind generation: the reference cases of MiniMind2 (gen2) and
minimind-3 (gen3) reproduced exactly, generation detection, and the Jinja renderer's environment and errors."""
import json

import pytest

from model import Tokenizer
from model.chat_template import ChatTemplate, ChatTemplateError
from model.tokenizer import V1_CHAT_TEMPLATE, render_chat


def test_reference_tokenizer_cases(gen):
    _, tok, ref = gen
    cases = json.loads((ref / "tokenizer_cases.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 32
    for case in cases:
        ids = tok.encode(case["text"])
        assert ids == case["ids"] == case["ids_add_special_tokens_false"], case["text"]
        assert [tok.id_to_token(i) for i in ids] == case["tokens"]
        assert tok.decode(ids) == case["decoded"]
        assert tok.decode(ids, skip_special_tokens=True) == case["decoded_skip_special_tokens"], case["text"]


def test_reference_special_ids_markers_and_generation(gen):
    name, tok, ref = gen
    meta = json.loads((ref / "tokenizer_cases.json").read_text(encoding="utf-8"))["meta"]
    assert tok.generation == name
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert tok.vocab_size == meta["len_tokenizer"]
    assert sorted(tok.special_ids) == sorted(meta["all_special_ids"])
    assert tok.sft_start_ids == meta["sft_bos_id"] and tok.sft_end_ids == meta["sft_eos_id"]


def test_gen3_added_tokens_survive_skip_special_tokens(gen):
    name, tok, _ = gen
    if name != "gen3":
        pytest.skip("minimind-3 only")
    ids = tok.encode("<tool_call><think>x</think><|buffer9|><|im_end|>")
    assert ids[:2] == [21, 25] and 35 in ids
    assert tok.decode(ids, skip_special_tokens=True) == "<tool_call><think>x</think><|buffer9|>"
    assert tok.token_bytes(21) == b"<tool_call>"


def test_reference_chat_template_cases(gen):
    _, tok, ref = gen
    data = json.loads((ref / "chat_template_cases.json").read_text(encoding="utf-8"))
    assert tok.chat_template == data["chat_template"]
    for case in data["cases"]:
        kwargs = dict(case["kwargs"])
        prompt = tok.apply_chat_template(case["messages"], tools=case["tools"], **kwargs)
        assert prompt == case["prompt"], case["name"]
        assert tok.encode(prompt) == case["ids"]
        kwargs["add_generation_prompt"] = not kwargs["add_generation_prompt"]
        opposite = tok.apply_chat_template(case["messages"], tools=case["tools"], **kwargs)
        assert opposite == case["prompt_with_opposite_add_generation_prompt"], case["name"]


def test_thinking_switches(gen):
    name, tok, _ = gen
    msgs = [{"role": "user", "content": "hi"}]
    plain = tok.apply_chat_template(msgs)
    if name == "gen2":  # enable_thinking=False closes an empty think block; absent or True adds nothing
        assert plain.endswith("<|im_start|>assistant\n")
        assert tok.apply_chat_template(msgs, enable_thinking=False).endswith("assistant\n<think>\n\n</think>\n\n")
        assert tok.apply_chat_template(msgs, enable_thinking=True) == plain
    else:  # open_thinking=True leaves the block open; anything else closes it empty
        assert plain.endswith("assistant\n<think>\n\n</think>\n\n")
        assert tok.apply_chat_template(msgs, open_thinking=True).endswith("assistant\n<think>\n")
        assert tok.apply_chat_template(msgs, enable_thinking=True) == plain


def test_v1_reference_template_renders_alike_in_jinja_and_python(shared_dir, ref_tokenizer):
    """v1's own template goes through the Python renderer (fast path); Jinja gives the same text."""
    assert ref_tokenizer.generation == "v1" and ref_tokenizer.config["chat_template"] == V1_CHAT_TEMPLATE
    jinja = ChatTemplate(V1_CHAT_TEMPLATE, "v1")
    for case in json.loads((shared_dir / "reference" / "chat_template_cases.json").read_text())["cases"]:
        assert jinja.render(case["messages"], add_generation_prompt=case["add_generation_prompt"]) == case["prompt"]
        assert ref_tokenizer.apply_chat_template(case["messages"]) == case["prompt"]
    assert (ref_tokenizer.sft_start_ids, ref_tokenizer.sft_end_ids) == ([1, 1078, 538, 501], [2])


def test_v1_python_renderer_equals_jinja_on_edge_cases():
    jinja = ChatTemplate(V1_CHAT_TEMPLATE, "v1")
    for msgs in ([{"role": "user", "content": ""}],
                 [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                  {"role": "assistant", "content": "b\n"}, {"role": "user", "content": "<s>c</s>"}],
                 [{"role": "assistant", "content": "only"}],
                 [{"role": "user", "content": "q"}, {"role": "system", "content": "late"}]):
        assert render_chat(msgs) == jinja.render(msgs)


def test_generation_is_told_by_the_tokenizer(tiny_tokenizer, chatml_tokenizer):
    assert tiny_tokenizer.generation == "v1" and tiny_tokenizer.generation_name == "MiniMind v1"
    assert chatml_tokenizer.generation == "gen3"  # <think> is one added token
    assert chatml_tokenizer.sft_start_ids == chatml_tokenizer.encode("<|im_start|>assistant\n")
    assert chatml_tokenizer.sft_end_ids == chatml_tokenizer.encode("<|im_end|>\n")


def test_template_fingerprint_covers_the_template(tmp_path, chatml_tokenizer, tiny_tokenizer):
    """A token cache must not survive a changed chat template; v1's keeps its earlier fingerprint."""
    import hashlib

    before = chatml_tokenizer.fingerprint()
    config = dict(chatml_tokenizer.config, chat_template="{{ messages[0].content }}")
    changed = Tokenizer(chatml_tokenizer._tok, config, chatml_tokenizer.path)
    assert changed.fingerprint() != before
    assert tiny_tokenizer.fingerprint() == hashlib.sha256(tiny_tokenizer._tok.to_str().encode()).hexdigest()[:16]


def test_template_environment_matches_transformers():
    t = ChatTemplate("{{ messages[0] | tojson }}|{{ tools | tojson(indent=2) }}|{{ bos_token }}|"
                     "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.content }}{% endfor %}"
                     "{% generation %}<g>{% endgeneration %}", "t")
    out = t.render([{"role": "user", "content": "杭州 <b>&"}, {"role": "assistant", "content": "x"}],
                   tools=[{"a": 1}], variables={"bos_token": "<s>"})
    assert out == '{"role": "user", "content": "杭州 <b>&"}|[\n  {\n    "a": 1\n  }\n]|<s>|x<g>'
    trimmed = ChatTemplate("{% if true %}\n  A\n{% endif %}\nB", "t").render([])
    assert trimmed == "  A\nB"  # trim_blocks drops the newline after a tag, lstrip_blocks the indent before it
    assert len(ChatTemplate("{{ strftime_now('%Y') }}", "t").render([])) == 4


def test_template_cannot_reach_python_internals_or_change_messages():
    msgs = [{"role": "user", "content": "a"}]
    with pytest.raises(ChatTemplateError, match="chat template error"):
        ChatTemplate("{{ messages.append(1) }}", "t").render(msgs)
    assert msgs == [{"role": "user", "content": "a"}]
    assert ChatTemplate("{{ messages[0].content.__class__ }}", "t").render(msgs) == ""


def test_template_errors_are_one_line_naming_the_folder_and_the_message(tmp_path, chatml_tokenizer):
    bad = ("{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
           "{{ raise_exception('unexpected role ' + m.role) }}{% endif %}{{ m.content + '\\n' }}{% endfor %}")
    folder = tmp_path / "tok"
    chatml_tokenizer.save(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = bad
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.from_dir(folder)
    with pytest.raises(ChatTemplateError) as caught:
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}])
    message = str(caught.value)
    assert message == f"{folder / 'tokenizer_config.json'}: chat template error at messages[1]: unexpected role bot"
    assert caught.value.user_facing
    with pytest.raises(ChatTemplateError, match=r"at messages\[2\]: unsupported operand"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                 {"role": "user", "content": None}])
    config["chat_template"] = "{% for m in messages %}\n{{ m.content }\n{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.from_dir(folder)  # loads: pretraining never renders a template
    with pytest.raises(ChatTemplateError, match=r"tokenizer_config.json: chat template line 2: .*") as caught:
        tok.apply_chat_template([{"role": "user", "content": "a"}])
    assert "\n" not in str(caught.value)


def test_folder_without_template_falls_back_to_v1_format(tmp_path, tiny_tokenizer):
    folder = tmp_path / "tok"
    tiny_tokenizer.save(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    msgs = [{"role": "user", "content": "hi"}]
    assert Tokenizer.from_dir(folder).apply_chat_template(msgs) == render_chat(msgs)


def test_named_templates_use_the_default_one(tmp_path, chatml_tokenizer):
    config = dict(chatml_tokenizer.config, chat_template=[{"name": "tool_use", "template": "T"},
                                                          {"name": "default", "template": "D{{ messages|length }}"}])
    tok = Tokenizer(chatml_tokenizer._tok, config, tmp_path)
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == "D1"
