"""From one SFT/DPO line to the text the model trains on, for each MiniMind generation (no torch, no numpy).

What each generation's own dataset code does before tokenising (see the tables in model/tokenizer.py):
- v1: `{"role", "content"}` turns, roles filled by position where absent, v1's template.
- MiniMind2 ("gen2"): turns as given (role "tool" included); the tool definitions are a `functions` list on
  the first turn when it is a system turn; `tool_calls` on assistant turns.
- minimind-3 ("gen3"): as MiniMind2, but the tool definitions are a `tools` JSON string on a system turn, and
  assistant turns may carry `reasoning_content`. A conversation with tools never gets a random system prompt.
`tools`/`functions`/`tool_calls` may be JSON strings (upstream's t2t data) or already objects.

Two optional random changes, drawn as upstream draws them (so a seeded `random.Random` reproduces upstream's
sample exactly):
- `add_system_ratio`: the probability of prepending one of the 10 built-in system prompts when the first turn
  is not a system turn (upstream 0.2);
- `empty_think_ratio`: the probability of KEEPING the empty think blocks (`<think>\\n\\n</think>\\n\\n`) of the
  rendered text: they are all removed when a draw exceeds it (upstream 0.05 for MiniMind2, 0.2 for minimind-3),
  so 1.0 keeps them all and -1.0 removes them all.
Our defaults (0.0 and 1.0) change nothing and draw nothing.
"""
from __future__ import annotations

import json
import random

# The system prompts MiniMind2's and minimind-3's SFT data code picks from (one of them at random).
SYSTEM_PROMPTS = (
    "你是一个知识丰富的AI，尽力为用户提供准确的信息。",
    "你是minimind，一个小巧但有用的语言模型。",
    "你是一个专业的AI助手，请提供有价值的回答。",
    "你是minimind，请尽力帮助用户解决问题。",
    "你是一个可靠的AI，请给出准确的回答。",
    "You are a helpful AI assistant.",
    "You are minimind, a lightweight intelligent assistant.",
    "You are a friendly chatbot. Please answer the user's questions carefully.",
    "You are a knowledgeable AI. Try your best to provide accurate information.",
    "You are minimind, a small but useful language model.",
)
EMPTY_THINK = "<think>\n\n</think>\n\n"
TOOL_FIELD = {"gen2": "functions", "gen3": "tools"}  # where each generation's data puts the tool definitions


def as_json(value):
    """A `tools`/`tool_calls` value: JSON text is parsed, anything else is returned as it is."""
    return json.loads(value) if isinstance(value, str) else value


def turns_of(obj: dict) -> list[dict]:
    """The conversation's turns with roles filled by position where absent (user first, then alternating).
    Turns that have a role are returned as they are (not copied): nothing here changes them."""
    out, expected = [], "user"
    for t, turn in enumerate(obj["conversations"]):
        role = turn.get("role") or expected
        out.append(turn if turn.get("role") else {**turn, "role": role})
        if not (role == "system" and t == 0):
            expected = "assistant" if role == "user" else "user"
    return out


def chat_messages(turns: list[dict], generation: str) -> tuple[list[dict], list | None]:
    """(messages for the chat template, tool definitions or None) as the generation's dataset code builds them."""
    if generation == "v1":
        return [{"role": t["role"], "content": t["content"]} for t in turns], None
    tools = None
    messages = []
    for k, turn in enumerate(turns):
        message = dict(turn)
        if message.get("tool_calls"):
            message["tool_calls"] = as_json(message["tool_calls"])
        if generation == "gen2":
            if k == 0 and message["role"] == "system" and message.get("functions"):
                tools = as_json(message["functions"])
        elif message["role"] == "system" and message.get("tools"):
            tools = as_json(message["tools"])  # minimind-3 reads every system turn; the last one wins
        messages.append(message)
    return messages, tools


def add_system_prompt(turns: list[dict], generation: str, rng: random.Random | None, ratio: float) -> list[dict]:
    """Upstream's `pre_processing_chat`: one draw when the first turn is not a system turn (minimind-3: and no
    turn has tools), a second one to pick the prompt when the first is below `ratio`."""
    if rng is None or not turns:
        return turns
    if generation == "gen3" and any(t.get("tools") for t in turns):
        return turns
    if turns[0].get("role") != "system" and rng.random() < ratio:
        return [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] + turns
    return turns


def drop_empty_think(text: str, rng: random.Random | None, keep_ratio: float) -> str:
    """Upstream's `post_processing_chat`: one draw when the text has an empty think block; above
    `keep_ratio`, every empty block goes (blocks with reasoning in them stay)."""
    if rng is not None and EMPTY_THINK in text and rng.random() > keep_ratio:
        return text.replace(EMPTY_THINK, "")
    return text


class Randomness:
    """The two ratios and the seed. Sample i draws from its own generator seeded by (seed, i), so it is the same
    in every run with that seed and whichever order samples are read in. Ratios that can never change anything
    draw nothing."""

    def __init__(self, add_system_ratio: float = 0.0, empty_think_ratio: float = 1.0, seed: int = 0):
        self.add_system_ratio = add_system_ratio
        self.empty_think_ratio = empty_think_ratio
        self.seed = seed

    @property
    def active(self) -> bool:
        return self.add_system_ratio > 0 or self.empty_think_ratio < 1

    def rng(self, index: int) -> random.Random | None:
        return random.Random(f"{self.seed}/{index}") if self.active else None

    def tag(self) -> str:
        """What a token cache of these samples must be keyed by besides the data and tokenizer ("" when inactive)."""
        if not self.active:
            return ""
        return f"system={self.add_system_ratio},think={self.empty_think_ratio},seed={self.seed}"


def render_conversation(tokenizer, obj: dict, rng: random.Random | None = None, add_system_ratio: float = 0.0,
                        empty_think_ratio: float = 1.0) -> str:
    """The SFT text of one `{"conversations": [...]}` object, as the tokenizer's generation trains on it."""
    generation = tokenizer.generation
    turns = add_system_prompt(turns_of(obj), generation, rng, add_system_ratio)
    messages, tools = chat_messages(turns, generation)
    text = tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=False)
    return drop_empty_think(text, rng, empty_think_ratio)


def render_side(tokenizer, messages: list[dict], rng: random.Random | None = None,
                empty_think_ratio: float = 1.0) -> str:
    """One side (chosen or rejected) of a DPO pair: the messages as given, no random system prompt."""
    msgs, _ = chat_messages(turns_of({"conversations": messages}), tokenizer.generation)
    text = tokenizer.apply_chat_template(msgs, add_generation_prompt=False)
    return drop_empty_think(text, rng, empty_think_ratio)
