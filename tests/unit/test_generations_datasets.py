"""Datasets of every MiniMind generation: MiniMind2 (gen2) and minimind-3 (gen3) reference outputs reproduced
exactly (SFT and DPO in the `plain` and `strip` modes, pretraining), upstream's random draws reproduced from the
same seeds, and the label rules, tools and randomness checked hermetically with small ChatML tokenizers."""
import json
import random

import numpy as np
import pytest
import torch

from dataset import DPODataset, PretrainDataset, SFTDataset
from dataset.conversation import SYSTEM_PROMPTS, render_conversation, render_side
from dataset.jsonl import JsonlFile
from dataset.preview import sample_from_raw, token_view
from dataset.stats import compute_stats
from dataset.validate import parse_line

MODES = {"plain": (0.0, 1.0), "strip": (0.0, -1.0)}  # (add_system_ratio, empty_think_ratio)
UPSTREAM_THINK_RATIO = {"gen2": 0.05, "gen3": 0.2}   # upstream's defaults, for the seeded mode



def load(path):
    return torch.load(path, weights_only=True)


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- reference cases ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_reference_sft_cases(gen, mode):
    _, tok, ref = gen
    expected = load(ref / "sft_expected.pt")
    system_ratio, think_ratio = MODES[mode]
    for L in expected["max_lengths"]:
        ds = SFTDataset(ref / "sft_cases.jsonl", tok, max_length=L, add_system_ratio=system_ratio,
                        empty_think_ratio=think_ratio)
        assert len(ds) == expected["num_rows"]
        for i in range(len(ds)):
            assert ds.prompt(i) == expected["prompts"][mode][i], i
            input_ids, labels = ds[i]
            assert input_ids.dtype == labels.dtype == torch.int64
            assert torch.equal(input_ids, expected["input_ids"][mode][L][i]), (L, i)
            assert torch.equal(labels, expected["labels"][mode][L][i]), (L, i)
            assert len(tok.encode(ds.prompt(i))) == expected["untruncated_lengths"][mode][i]


def test_reference_sft_seeded_draws(gen):
    """Upstream's own random choices (system prompt, empty-think removal) come out the same from a generator
    seeded like upstream's global one: the draws are made in the same order."""
    name, tok, ref = gen
    expected = load(ref / "sft_expected.pt")
    jsonl = JsonlFile(ref / "sft_cases.jsonl")
    for i, seed in enumerate(expected["seeds"]):
        obj = json.loads(jsonl.line(i))
        prompt = render_conversation(tok, obj, random.Random(seed), 0.2, UPSTREAM_THINK_RATIO[name])
        assert prompt == expected["prompts"]["seeded"][i], i
        added = expected["decisions"][i]["system_prompt_added"]
        assert (added in prompt) if added else True
        assert added is None or added in SYSTEM_PROMPTS


def test_reference_pretrain_cases(gen):
    _, tok, ref = gen
    expected = load(ref / "pretrain_expected.pt")
    for L in expected["max_lengths"]:
        ds = PretrainDataset(ref / "pretrain_cases.jsonl", tok, max_length=L)
        for i in range(len(ds)):
            input_ids, labels = ds[i]
            assert torch.equal(input_ids, expected["input_ids"][L][i]), (L, i)
            assert torch.equal(labels, expected["labels"][L][i]), (L, i)
    ds = PretrainDataset(ref / "pretrain_cases.jsonl", tok, max_length=32)
    input_ids, labels = ds[5]  # a literal <|endoftext|> inside the text is masked like padding
    literal = input_ids.tolist().index(0)
    assert literal < input_ids.tolist().index(2) and labels[literal] == -100
    input_ids, labels = ds[4]  # a literal <|im_end|> stays a target
    assert input_ids.tolist().count(2) == 2 and (labels[input_ids == 2] == 2).all()


@pytest.mark.parametrize("mode", MODES)
def test_reference_dpo_cases(gen, mode):
    _, tok, ref = gen
    expected = load(ref / "dpo_expected.pt")
    for L in expected["max_lengths"]:
        ds = DPODataset(ref / "dpo_cases.jsonl", tok, max_length=L, empty_think_ratio=MODES[mode][1])
        for i in range(len(ds)):
            item = ds[i]
            assert list(item) == ["x_chosen", "y_chosen", "mask_chosen", "x_rejected", "y_rejected",
                                  "mask_rejected"]
            for key, value in item.items():
                assert torch.equal(value, expected[mode][L][key][i]), (L, i, key)
            prompts = expected["prompts"][mode][i]
            assert ds.prompts(i) == (prompts["chosen"], prompts["rejected"])


def test_reference_dpo_seeded_draws(gen):
    name, tok, ref = gen
    expected = load(ref / "dpo_expected.pt")
    jsonl = JsonlFile(ref / "dpo_cases.jsonl")
    for i, seed in enumerate(expected["seeds"]):
        obj, rng = json.loads(jsonl.line(i)), random.Random(seed)
        chosen = render_side(tok, obj["chosen"], rng, UPSTREAM_THINK_RATIO[name])
        rejected = render_side(tok, obj["rejected"], rng, UPSTREAM_THINK_RATIO[name])
        assert {"chosen": chosen, "rejected": rejected} == expected["prompts"]["seeded"][i], i


def test_reference_sft_through_cache_and_batches_gives_upstreams_loss_targets(tmp_path, gen):
    """The trainer's (X, Y, loss_mask) from the token cache are upstream's unshifted labels shifted by one:
    Y[t] == labels[t + 1] wherever labels[t + 1] != -100, and only there is the loss counted."""
    from dataset.batching import Collator
    from dataset.token_cache import build

    _, tok, ref = gen
    expected = load(ref / "sft_expected.pt")
    for L in expected["max_lengths"]:
        ds = SFTDataset(ref / "sft_cases.jsonl", tok, max_length=L)
        cache = build(ds, tmp_path / f"c{L}", tok.vocab_size, {})
        batch = Collator(cache)(list(range(len(ds))))
        T = batch.X.shape[1]
        labels = expected["labels"]["plain"][L]
        targets = labels[:, 1:T + 1]
        assert torch.equal(batch.X, expected["input_ids"]["plain"][L][:, :T])
        assert torch.equal(batch.loss_mask.bool(), targets != -100)
        assert torch.equal(batch.Y[targets != -100], targets[targets != -100])
        assert int((labels[:, T + 1:] != -100).sum()) == 0  # nothing trained beyond the batch's width


# ---- hermetic: tools, reasoning, label rules -----------------------------------------------------------------
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def tool_row(as_strings: bool, generation: str):
    tools, calls = [WEATHER], [{"name": "get_weather", "arguments": {"city": "上海"}}]
    field = "tools" if generation == "gen3" else "functions"
    return {"conversations": [
        {"role": "system", "content": "你可以调用工具。", field: json.dumps(tools) if as_strings else tools},
        {"role": "user", "content": "上海天气？"},
        {"role": "assistant", "content": "", "tool_calls": json.dumps(calls) if as_strings else calls},
        {"role": "tool", "content": '{"weather": "晴"}'},
        {"role": "assistant", "content": "晴天。", "reasoning_content": "看工具结果"}]}


@pytest.mark.parametrize("which", ["chatml_tokenizer", "chatml2_tokenizer"])
def test_tools_and_tool_calls_as_strings_or_objects(tmp_path, request, which):
    tok = request.getfixturevalue(which)
    rows = [tool_row(True, tok.generation), tool_row(False, tok.generation)]
    ds = SFTDataset(write(tmp_path / "t.jsonl", rows), tok, max_length=400)
    assert ds.prompt(0) == ds.prompt(1)
    prompt = ds.prompt(0)
    assert '# Tools\n{"type": "function", "function": {"name": "get_weather"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>' in prompt
    input_ids, labels = ds[0]
    trained = tok.decode(input_ids[labels != -100].tolist())
    assert "<tool_call>" in trained and "晴天。" in trained and "看工具结果" in trained  # think block trained
    assert "weather\": \"晴\"" not in trained and "上海天气" not in trained  # tool response, user: not trained


def test_tools_on_the_wrong_field_for_the_generation_are_not_tools(tmp_path, chatml2_tokenizer):
    """MiniMind2 reads `functions` on the first turn only; minimind-3's `tools` field means nothing to it."""
    ds = SFTDataset(write(tmp_path / "t.jsonl", [tool_row(True, "gen3")]), chatml2_tokenizer, max_length=400)
    assert "# Tools" not in ds.prompt(0)


def test_truncated_reply_is_trained_to_the_end(tmp_path, chatml_tokenizer):
    row = {"conversations": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "很长的回答" * 40}]}
    ds = SFTDataset(write(tmp_path / "s.jsonl", [row]), chatml_tokenizer, max_length=48)
    input_ids, labels = ds[0]
    start = len(chatml_tokenizer.encode("<|im_start|>user\n问<|im_end|>\n<|im_start|>assistant\n"))
    assert (labels[:start] == -100).all() and torch.equal(labels[start:], input_ids[start:])


def test_random_system_prompt_and_empty_think_ratios(tmp_path, chatml_tokenizer):
    rows = [{"conversations": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(40)]
    path = write(tmp_path / "s.jsonl", rows)
    always = SFTDataset(path, chatml_tokenizer, add_system_ratio=1.0, seed=7)
    assert all(any(p in always.prompt(i) for p in SYSTEM_PROMPTS) for i in range(40))
    again = SFTDataset(path, chatml_tokenizer, add_system_ratio=1.0, seed=7)
    assert [always.prompt(i) for i in range(40)] == [again.prompt(i) for i in range(40)]  # reproducible
    other = SFTDataset(path, chatml_tokenizer, add_system_ratio=1.0, seed=8)
    assert [always.prompt(i) for i in range(40)] != [other.prompt(i) for i in range(40)]
    half = SFTDataset(path, chatml_tokenizer, add_system_ratio=0.5, seed=7)
    assert 5 < sum(any(p in half.prompt(i) for p in SYSTEM_PROMPTS) for i in range(40)) < 35
    assert always.cache_tag and not SFTDataset(path, chatml_tokenizer).cache_tag
    keep = SFTDataset(path, chatml_tokenizer, empty_think_ratio=1.0)
    drop = SFTDataset(path, chatml_tokenizer, empty_think_ratio=-1.0)
    assert "<think>\n\n</think>\n\n" in keep.prompt(0) and "<think>" not in drop.prompt(0)


def test_tool_conversations_never_get_a_random_system_prompt_in_gen3(tmp_path, chatml_tokenizer):
    row = tool_row(True, "gen3")
    row["conversations"] = row["conversations"][1:]  # no system turn: tools on a user turn
    row["conversations"][0]["tools"] = json.dumps([WEATHER])
    ds = SFTDataset(write(tmp_path / "t.jsonl", [row]), chatml_tokenizer, add_system_ratio=1.0)
    assert not any(p in ds.prompt(0) for p in SYSTEM_PROMPTS)


def test_pretrain_gen2_keeps_eos_and_masks_by_value(tmp_path, chatml_tokenizer):
    path = write(tmp_path / "p.jsonl", [{"text": "你好，世界！" * 10}, {"text": "a<|endoftext|>b"}, {"text": ""}])
    ds = PretrainDataset(path, chatml_tokenizer, max_length=12)
    input_ids, labels = ds[0]
    assert input_ids[0] == 1 and input_ids[-1] == 2 and len(input_ids) == 12 and (labels != -100).all()
    input_ids, labels = ds[1]
    assert 0 in input_ids[:4].tolist() and (labels[input_ids == 0] == -100).all()
    assert ds[2][0][:3].tolist() == [1, 2, 0]


def test_dpo_v1_keeps_its_rule(tmp_path, tiny_tokenizer):
    pair = {"chosen": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}],
            "rejected": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "走开"}]}
    item = DPODataset(write(tmp_path / "d.jsonl", [pair]), tiny_tokenizer, max_length=64)[0]
    trained = tiny_tokenizer.decode(item["y_chosen"][item["mask_chosen"].bool()].tolist())
    assert trained == "你好！</s>\n" and item["x_chosen"].shape == (63,)


def test_v1_items_are_unchanged_in_shape(tmp_path, tiny_tokenizer):
    row = {"conversations": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    X, Y, mask = SFTDataset(write(tmp_path / "s.jsonl", [row]), tiny_tokenizer, max_length=32)[0]
    assert X.shape == Y.shape == mask.shape == (31,)


# ---- validation, preview, statistics --------------------------------------------------------------------------
def test_validation_follows_the_generation():
    line = json.dumps(tool_row(True, "gen3")).encode()
    with pytest.raises(ValueError, match="unknown role 'tool'; tools need a MiniMind2 or minimind-3 tokenizer"):
        parse_line(line, "sft", "v1")
    assert parse_line(line, "sft", "gen3") and parse_line(line, "sft", None)  # None: the line's own shape
    bad = tool_row(True, "gen3")
    bad["conversations"][2]["tool_calls"] = "[{not json"
    with pytest.raises(ValueError, match='turn 3: "tool_calls" must be a list or JSON text of one'):
        parse_line(json.dumps(bad).encode(), "sft", "gen3")
    bad["conversations"][2]["tool_calls"] = [{"arguments": {}}]
    with pytest.raises(ValueError, match='call 1 has no "name"'):
        parse_line(json.dumps(bad).encode(), "sft", "gen2")
    with pytest.raises(ValueError, match='rejected: missing|missing "rejected"'):
        parse_line(b'{"chosen": [{"role": "user", "content": "x"}]}', "dpo")


def test_sample_blocks_show_tools_calls_and_reasoning(chatml_tokenizer):
    row = tool_row(True, "gen3")
    row["conversations"].append({"role": "user", "content": "再说一遍"})
    row["conversations"].append({"role": "assistant", "content": "<think>\n想一想\n</think>\n\n晴。"})
    sample = sample_from_raw(json.dumps(row, ensure_ascii=False).encode(), 0, "sft")
    assert [(b.role, b.title) for b in sample.blocks] == [
        ("system", "system"), ("tools", "tools (tools)"), ("user", "user"), ("tool_call", "tool call"),
        ("tool", "tool response"), ("reasoning", "reasoning"), ("assistant", "assistant"), ("user", "user"),
        ("reasoning", "reasoning"), ("assistant", "assistant")]
    assert sample.blocks[3].text == 'get_weather({"city": "上海"})'
    assert '"name": "get_weather"' in sample.blocks[1].text and sample.blocks[-2].text == "想一想"


@pytest.mark.parametrize("max_len", [40, 96, 400])
def test_token_view_marks_what_the_dataset_trains(tmp_path, chatml_tokenizer, max_len):
    rows = [tool_row(False, "gen3"), {"conversations": [{"role": "user", "content": "只有问题"}]}]
    path = write(tmp_path / "s.jsonl", rows)
    ds = SFTDataset(path, chatml_tokenizer, max_length=max_len)
    jsonl = JsonlFile(path)
    for i in range(len(rows)):
        tv = token_view(sample_from_raw(jsonl.line(i), i, "sft", "gen3"), chatml_tokenizer, max_len)
        input_ids, labels = ds[i]
        shown = [p for p in tv.pieces if not p.cut]
        assert [p.id for p in shown] == input_ids[:len(shown)].tolist()
        # Upstream's label at t is trained where our mark is: position 0 is never a target.
        assert [p.trained for p in shown][1:] == (labels != -100)[1:len(shown)].tolist()
        assert tv.n_trained == int((labels[1:] != -100).sum())
        assert tv.prompt == ds.prompt(i)


def test_token_view_refuses_tool_turns_for_a_v1_tokenizer(tiny_tokenizer):
    sample = sample_from_raw(json.dumps(tool_row(True, "gen3")).encode(), 4, "sft")
    assert sample.ok  # by its own shape
    with pytest.raises(ValueError, match="line 5: turn 4: unknown role 'tool'"):
        token_view(sample, tiny_tokenizer, 64)


def test_pretrain_view_of_gen2_keeps_the_eos_when_cutting(tmp_path, chatml_tokenizer):
    path = write(tmp_path / "p.jsonl", [{"text": "你好，世界！" * 10}])
    tv = token_view(sample_from_raw(JsonlFile(path).line(0), 0, "pretrain"), chatml_tokenizer, 12)
    input_ids, labels = PretrainDataset(path, chatml_tokenizer, max_length=12)[0]
    kept = [p for p in tv.pieces if not p.cut]
    assert [p.id for p in kept] == input_ids.tolist() and kept[-1].text == "<|im_end|>"
    text_ids = chatml_tokenizer.encode("你好，世界！" * 10)
    assert [p.id for p in tv.pieces if p.cut] == text_ids[10:]
    assert tv.n_tokens == len(text_ids) + 2 and tv.n_truncated == len(text_ids) - 10
    assert tv.n_trained == 11 and tv.n_trained_lost == tv.n_truncated


def test_stats_count_what_the_datasets_train(tmp_path, chatml_tokenizer):
    rows = [tool_row(True, "gen3"), {"conversations": [{"role": "user", "content": "q"},
                                                       {"role": "assistant", "content": "a" * 50}]}]
    path = write(tmp_path / "s.jsonl", rows)
    st = compute_stats(JsonlFile(path), "sft", chatml_tokenizer, 64)
    ds = SFTDataset(path, chatml_tokenizer, max_length=64)
    assert st.bad_lines == 0 and st.samples == 2
    assert st.trained_tokens_per_epoch == sum(int((ds[i][1][1:] != -100).sum()) for i in range(2))
    ppath = write(tmp_path / "p.jsonl", [{"text": "你好" * 30}, {"text": "x"}])
    st = compute_stats(JsonlFile(ppath), "pretrain", chatml_tokenizer, 16)
    pds = PretrainDataset(ppath, chatml_tokenizer, max_length=16)
    assert st.trained_tokens_per_epoch == sum(int((pds[i][1][1:] != -100).sum()) for i in range(2))
    assert st.lengths.max == len(chatml_tokenizer.encode("你好" * 30)) + 2


def test_cache_holds_gen3_samples(tmp_path, chatml_tokenizer):
    from dataset.token_cache import build

    path = write(tmp_path / "s.jsonl", [tool_row(True, "gen3")] * 3)
    ds = SFTDataset(path, chatml_tokenizer, max_length=80, add_system_ratio=0.5, empty_think_ratio=0.5, seed=3)
    cache = build(ds, tmp_path / "c", chatml_tokenizer.vocab_size, {}, workers=1)
    for i in range(len(ds)):
        ids, mask = ds.encode(i)
        assert np.array_equal(cache.sample(i)[0], ids) and np.array_equal(cache.sample(i)[1], mask)


# ---- data inspect ---------------------------------------------------------------------------------------------
def test_data_inspect_shows_the_generation_and_tool_blocks(tmp_path, capsys, chatml_tokenizer, tiny_tokenizer):
    from minimind_tui.cli import main

    path = write(tmp_path / "t2t.jsonl", [tool_row(True, "gen3")])
    tok = str(chatml_tokenizer.path)
    assert main(["data", "inspect", str(path), "--line", "1", "--tokenizer", tok]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:1 (sft, minimind-3 tokenizer)")
    assert '── tool call ──\nget_weather({"city": "上海"})' in out and "── reasoning ──\n看工具结果" in out
    assert "[<think>\n看工具结果\n</think>\n\n晴天。<|im_end|>\n]" in out  # think block, reply, end, newline
    assert main(["data", "inspect", str(path), "--line", "1", "--tokenizer", tok, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["generation"] == "gen3" and {"role": "tool_call", "title": "tool call",
                                          "text": 'get_weather({"city": "上海"})'} in d["blocks"]
    assert main(["data", "inspect", str(path), "--tokenizer", tok]) == 0
    assert f"tokenizer: {tok} (minimind-3), max_seq_len 512" in capsys.readouterr().out
    assert main(["data", "inspect", str(path), "--line", "1", "--tokenizer", str(tiny_tokenizer.path)]) == 2
    assert "tools need a MiniMind2 or minimind-3 tokenizer" in capsys.readouterr().err
