"""A model's reply split into what a reader tells apart: its reasoning (`<think>...</think>`), its answer and its
tool calls (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`). One parser for the CLI and the Chat tab.

Torch-free and Textual-free. Streaming-safe: a reply is parsed again as it grows, and while it streams
(`final=False`) whatever may still become a tag ("</thi" at the end) is held back, so a half-typed tag never
flashes up as text and every part only ever grows, never changes what was shown. The cut follows minimind-3's
chat template: the reasoning is what comes before the first `</think>` (an opening `<think>` dropped), the
answer what follows it. A reply only counts as reasoning when it starts inside a think block: the prompt
opened one (minimind-3's `open_thinking`), or the reply's first text is `<think>`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"

THINKING, ANSWER, TOOL_CALL = "thinking", "answer", "tool_call"  # ReplyStream's event kinds


def opens_thinking(prompt: str) -> bool:
    """Whether a rendered prompt ends inside a think block (`<think>` with no `</think>` after it), so the reply
    starts with reasoning: minimind-3's generation prompt with `open_thinking` ends with "<think>\\n"."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


@dataclass(frozen=True)
class ToolCall:
    name: str | None   # None: the block is not the JSON object a tool call is
    arguments: object  # as given: an object, or a string (upstream's data may hold JSON text)
    raw: str           # the text between the tags

    @classmethod
    def parse(cls, raw: str) -> ToolCall:
        try:
            obj = json.loads(raw)
        except ValueError:
            return cls(None, None, raw)
        if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
            obj = obj["function"]  # the OpenAI-style wrapper, as the templates unwrap it
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return cls(None, None, raw)
        return cls(obj["name"], obj.get("arguments", {}), raw)

    def describe(self) -> str:
        """`name({"city": "上海"})`, or the raw text of a block that does not read as a call."""
        if self.name is None:
            return f"(not a valid call) {self.raw.strip()}"
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments, ensure_ascii=False)
        return f"{self.name}({args})"


@dataclass(frozen=True)
class ReplyParts:
    thinking: str = ""        # the reasoning as shown: no tags, no surrounding whitespace
    answer: str = ""          # the reply without reasoning and tool calls, stripped
    tool_calls: tuple[ToolCall, ...] = ()
    in_thinking: bool = False  # the reply started with reasoning (a think block, even an empty one)
    thinking_done: bool = False  # ... and `</think>` has come
    reasoning: str = ""       # the reasoning exactly as generated (what a template's reasoning_content takes)
    content: str = ""         # everything after the reasoning as generated, tool-call tags included
    calling: bool = False     # a tool call has started and not ended yet (streaming)
    final: bool = True        # the reply is over (False: the split of a reply still streaming)

    @property
    def thinking_open(self) -> bool:
        """Reasoning still streaming (or cut off before `</think>`)."""
        return self.in_thinking and not self.thinking_done


def _hold_back(text: str, tag: str) -> str:
    """`text` without a tail that may be the start of `tag` (kept until the next piece tells)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return text[:-k]
    return text


def split_reply(text: str, starts_in_thinking: bool = False, final: bool = True) -> ReplyParts:
    """The parts of `text`. `starts_in_thinking`: the prompt ended inside a think block (`opens_thinking`).
    `final=False` while the reply streams: a possible partial tag at the end is held back."""
    body = text
    if starts_in_thinking:
        lead = body.lstrip()
        if lead.startswith(THINK_OPEN):  # a model that opens the block again: the template drops it too
            body = lead[len(THINK_OPEN):]
    else:
        lead = body.lstrip()
        if lead.startswith(THINK_OPEN):
            starts_in_thinking, body = True, lead[len(THINK_OPEN):]
        elif not final and lead and THINK_OPEN.startswith(lead):
            return ReplyParts(final=False)  # perhaps "<think>" still arriving
    reasoning, rest, done = "", body, False
    if starts_in_thinking:
        if THINK_CLOSE in body:
            reasoning, rest = body.split(THINK_CLOSE, 1)
            done = True
        else:
            reasoning, rest = (body if final else _hold_back(body, THINK_CLOSE)), ""
    answer, calls, calling = _answer_and_calls(rest, final)
    return ReplyParts(thinking=reasoning.strip(), answer=answer, tool_calls=tuple(calls),
                      in_thinking=starts_in_thinking, thinking_done=done, reasoning=reasoning, content=rest,
                      calling=calling, final=final)


def _answer_and_calls(rest: str, final: bool) -> tuple[str, list[ToolCall], bool]:
    texts, calls, at = [], [], 0
    while True:
        start = rest.find(CALL_OPEN, at)
        if start < 0:
            tail = rest[at:]
            texts.append(tail if final else _hold_back(tail, CALL_OPEN))
            return "".join(texts).strip(), calls, False
        texts.append(rest[at:start])
        end = rest.find(CALL_CLOSE, start)
        if end < 0:  # still streaming, or cut off: a call is shown once it is complete
            if final:
                calls.append(ToolCall.parse(rest[start + len(CALL_OPEN):]))
            return "".join(texts).strip(), calls, not final
        calls.append(ToolCall.parse(rest[start + len(CALL_OPEN):end].strip()))
        at = end + len(CALL_CLOSE)


@dataclass
class ReplyStream:
    """A reply as it streams: `feed` text pieces, `close()` at the end; `parts()` is the split so far and
    `events()` what is new since the last call: ("thinking", text), ("answer", text), ("tool_call", ToolCall),
    in the order a reader meets them. Parsing happens only when asked."""
    starts_in_thinking: bool = False
    text: str = ""
    final: bool = False
    _shown: dict = field(default_factory=lambda: {THINKING: 0, ANSWER: 0, TOOL_CALL: 0})

    def feed(self, piece: str) -> None:
        self.text += piece

    def close(self) -> None:
        self.final = True

    def parts(self) -> ReplyParts:
        return split_reply(self.text, self.starts_in_thinking, self.final)

    def events(self) -> list[tuple[str, object]]:
        parts, shown, out = self.parts(), self._shown, []
        # Each part only grows (see the module's docstring), so what is new is its tail.
        for kind, text in ((THINKING, parts.thinking), (ANSWER, parts.answer)):
            if len(text) > shown[kind]:
                out.append((kind, text[shown[kind]:]))
                shown[kind] = len(text)
        out += [(TOOL_CALL, call) for call in parts.tool_calls[shown[TOOL_CALL]:]]
        shown[TOOL_CALL] = len(parts.tool_calls)
        return out
