"""A reply split into reasoning, answer and tool calls: whole, and while it streams (partial tags held back)."""
from __future__ import annotations

import io

import pytest

from minimind_tui.chat.reply import ANSWER, THINKING, TOOL_CALL, ReplyStream, ToolCall, opens_thinking, split_reply
from minimind_tui.commands.chat import FAINT, NOT_FAINT, ReplyPrinter

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>'
REPLIES = [
    # (reply text, the prompt opened a think block)
    ("<think>\nLet me see.\n</think>\n\nIt is sunny.", False),
    ("Let me see.\n</think>\n\nIt is sunny." + CALL, True),
    ("I will check." + CALL + "\n" + CALL.replace("上海", "北京") + "\nDone.", False),
    ("plain answer < 3 and <b>bold</b>", False),
    ("<think>\nstill thinking when the reply was cut off", False),
    ("text <tool_call>{\"name\": \"cut\", \"argu", False),
]


def test_reasoning_answer_and_tool_calls_are_told_apart():
    parts = split_reply("<think>\nLet me see.\n</think>\n\nIt is sunny." + CALL)
    assert parts.thinking == "Let me see." and parts.answer == "It is sunny."
    assert parts.reasoning == "\nLet me see.\n" and parts.content == "\n\nIt is sunny." + CALL
    assert parts.tool_calls == (ToolCall("get_weather", {"city": "上海"}, parts.tool_calls[0].raw),)
    assert parts.tool_calls[0].describe() == 'get_weather({"city": "上海"})'
    assert parts.in_thinking and parts.thinking_done and not parts.thinking_open

    # minimind-3 with open_thinking: the prompt ends with "<think>\n", so the reply starts inside the block.
    opened = split_reply("Let me see.\n</think>\n\nIt is sunny.", starts_in_thinking=True)
    assert (opened.thinking, opened.answer) == ("Let me see.", "It is sunny.")
    # Without a think block, "</think>" is just text (the reply never started reasoning).
    assert split_reply("a </think> b").answer == "a </think> b"
    assert split_reply("plain").thinking == "" and not split_reply("plain").in_thinking


def test_a_prompt_opens_thinking_when_it_ends_inside_a_think_block():
    assert opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not opens_thinking("<|im_start|>assistant\n")


def test_tool_calls_in_openai_form_strings_or_broken_json():
    wrapped = ToolCall.parse('{"function": {"name": "f", "arguments": "{\\"x\\": 1}"}}')
    assert (wrapped.name, wrapped.arguments) == ("f", '{"x": 1}') and wrapped.describe() == 'f({"x": 1})'
    broken = ToolCall.parse('{"name": "f", "arguments": ')
    assert broken.name is None and broken.describe() == '(not a valid call) {"name": "f", "arguments":'
    assert ToolCall.parse('["not", "a", "call"]').name is None
    # A call cut off by the token limit is still shown once the reply is over, as what it is.
    cut = split_reply('ok <tool_call>{"name": "f", "argu')
    assert cut.answer == "ok" and cut.tool_calls[0].name is None and not cut.calling


@pytest.mark.parametrize("text,opened", REPLIES, ids=["think", "opened", "two calls", "angle brackets",
                                                       "cut reasoning", "cut call"])
def test_streaming_never_shows_a_partial_tag_and_ends_where_the_whole_reply_does(text, opened):
    # Fed a character at a time, the parts only ever grow and end equal to the whole reply's split.
    stream, seen = ReplyStream(starts_in_thinking=opened), {THINKING: "", ANSWER: "", TOOL_CALL: []}
    for ch in text:
        stream.feed(ch)
        for kind, value in stream.events():
            if kind == TOOL_CALL:
                seen[kind].append(value)
            else:
                seen[kind] += value
        shown = seen[THINKING] + seen[ANSWER]
        for tag in ("<think", "</think", "<tool_call", "</tool_call"):
            assert tag not in shown, f"{tag!r} shown while streaming {text!r}"
    stream.close()
    for kind, value in stream.events():
        seen[kind] = seen[kind] + ([value] if kind == TOOL_CALL else value)
    whole = split_reply(text, opened)
    assert (seen[THINKING], seen[ANSWER], tuple(seen[TOOL_CALL])) == (whole.thinking, whole.answer,
                                                                      whole.tool_calls)


def test_a_possible_tag_is_held_back_only_until_the_next_piece_tells():
    stream = ReplyStream()
    stream.feed("<thi")
    assert stream.events() == []
    stream.feed("s is not a tag")
    assert stream.events() == [(ANSWER, "<this is not a tag")]
    stream.feed(" <tool_")
    assert stream.events() == []
    stream.feed("call>")
    assert stream.parts().calling and stream.events() == []


def test_the_cli_prints_reasoning_dimmed_apart_from_the_answer_and_tool_calls_by_name():
    stream = ReplyStream()
    stream.feed("<think>\nhmm\n</think>\n\nIt is sunny." + CALL)
    stream.close()
    for faint in (True, False):
        out = io.StringIO()
        printer = ReplyPrinter(out, faint=faint)
        printer.show(stream.events() if faint else ReplyStream(False, stream.text, True).events())
        printer.finish()
        text = out.getvalue()
        assert "<think>" not in text and "<tool_call>" not in text
        assert '🔧 get_weather({"city": "上海"})' in text
        reasoning, answer = text.split("\n\n", 1)
        assert reasoning.endswith("💭 hmm" + (NOT_FAINT if faint else "")) and answer.startswith("It is sunny.")
        assert (FAINT in text) is faint  # ANSI faint only where asked (a terminal)
    out = io.StringIO()  # not a terminal: no escape codes
    ReplyPrinter(out).show([(THINKING, "x")])
    assert "\x1b" not in out.getvalue()
