"""What makes a JSONL line a valid pretraining, SFT or DPO sample, and the strict / skip-bad-lines policy."""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from .conversation import turns_of
from .errors import DataError
from .jsonl import JsonlFile

KINDS = ("pretrain", "sft", "dpo")
ROLES = ("system", "user", "assistant")
CHAT_ROLES = (*ROLES, "tool")  # MiniMind2 and minimind-3
CHAT_FIELDS = ("tool_calls", "tools", "functions", "reasoning_content")


@dataclass
class BadLine:
    line_number: int  # 1-based, as editors show it
    reason: str


def parse_line(raw: bytes, kind: str, generation: str | None = None):
    """Parsed sample, or raises ValueError(reason). Blank lines are returned as None (not samples).
    `generation` (a tokenizer's, see model/tokenizer.py) picks the conversation rules; None: the rules the
    line's own shape calls for (v1's, unless it uses tools, tool calls or reasoning)."""
    if not raw.strip():
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({str(e).split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, found {type(obj).__name__}")
    if kind == "pretrain":
        if "text" not in obj:
            hint = " (this looks like SFT data: use train sft)" if "conversations" in obj else ""
            raise ValueError(f'missing "text" key{hint}')
        if not isinstance(obj["text"], str):
            raise ValueError(f'"text" must be a string, found {type(obj["text"]).__name__}')
    elif kind == "dpo":
        check_pair(obj, generation)
    else:
        check_conversation(obj, generation)
    return obj


def check_conversation(obj: dict, generation: str | None = None) -> None:
    if "conversations" not in obj:
        hint = " (this looks like pretraining data: use train pretrain)" if "text" in obj else ""
        raise ValueError(f'missing "conversations" key{hint}')
    check_turns(obj["conversations"], "conversations", generation)


def check_pair(obj: dict, generation: str | None = None) -> None:
    """A DPO line: `chosen` and `rejected`, each a conversation."""
    for key in ("chosen", "rejected"):
        if key not in obj:
            raise ValueError(f'missing "{key}" key (a DPO line has "chosen" and "rejected" conversations)')
        try:
            check_turns(obj[key], key, generation)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None


def check_turns(conv, key: str, generation: str | None) -> None:
    if not isinstance(conv, list):
        raise ValueError(f'"{key}" must be a list, found {type(conv).__name__}')
    if not conv:
        raise ValueError("empty conversation")
    if generation is None:
        generation = "gen3" if any(_uses_tools_or_reasoning(turn) for turn in conv) else "v1"
    if generation == "v1":
        _check_v1_turns(conv)
    else:
        _check_chat_turns(conv)


def _uses_tools_or_reasoning(turn) -> bool:
    return isinstance(turn, dict) and (turn.get("role") == "tool" or any(turn.get(k) for k in CHAT_FIELDS))


def _check_object(turn, t: int) -> None:
    if not isinstance(turn, dict):
        raise ValueError(f"turn {t + 1} must be an object, found {type(turn).__name__}")


def _check_v1_turns(conv: list) -> None:
    expected = "user"
    for t, turn in enumerate(conv):
        _check_object(turn, t)
        if not isinstance(turn.get("content"), str):
            raise ValueError(f'turn {t + 1}: "content" must be a string')
        role = turn.get("role", expected)  # MiniMind assigns roles by position when absent
        if role not in ROLES:
            hint = ("; tools need a MiniMind2 or minimind-3 tokenizer (--tokenizer)" if role == "tool"
                    else " (use system, user or assistant)")
            raise ValueError(f"turn {t + 1}: unknown role {role!r}{hint}")
        if role == "system" and t == 0:
            continue
        if role != expected:
            raise ValueError(f"turn {t + 1}: roles out of order: expected {expected}, found {role}")
        expected = "assistant" if expected == "user" else "user"


def _check_chat_turns(conv: list) -> None:
    """MiniMind2 / minimind-3: any order of system, user, assistant and tool turns (their templates render
    each as it comes); the tool fields must be what the template can read."""
    for t, turn in enumerate(conv):
        _check_object(turn, t)
        where = f"turn {t + 1}"
        role = turn.get("role")
        if role is not None and role not in CHAT_ROLES:
            raise ValueError(f"{where}: unknown role {role!r} (use system, user, assistant or tool)")
        content = turn.get("content")
        if not isinstance(content, str) and not (content is None and turn.get("tool_calls")):
            raise ValueError(f'{where}: "content" must be a string')
        if not isinstance(turn.get("reasoning_content"), (str, type(None))):
            raise ValueError(f'{where}: "reasoning_content" must be a string')
        for key in ("tools", "functions", "tool_calls"):
            if turn.get(key):  # empty or null: no tools (the templates test truthiness)
                _check_json_list(turn[key], f'{where}: "{key}"', calls=key == "tool_calls")


def _check_json_list(value, what: str, calls: bool) -> None:
    """A list of objects, given as such or as JSON text; each tool call has a name (possibly inside an
    OpenAI-style "function" wrapper)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError(f"{what} must be a list or JSON text of one; this text is not valid JSON") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{what} must be a list of objects (or JSON text of one)")
    for k, call in enumerate(value if calls else []):
        inner = call.get("function") if isinstance(call.get("function"), dict) else call
        if not isinstance(inner.get("name"), str):
            raise ValueError(f'{what}: call {k + 1} has no "name"')


def messages_of(obj: dict) -> list[dict]:
    """The conversation as v1 chat-template messages, roles filled in by position where absent."""
    return [{"role": t["role"], "content": t["content"]} for t in turns_of(obj)]


def scan(jsonl: JsonlFile, kind: str, progress=None, generation: str | None = None
         ) -> tuple[list[int], list[BadLine]]:
    """Indices of good sample lines and the bad lines with reasons. Parses every line once."""
    good: list[int] = []
    bad: list[BadLine] = []
    n = len(jsonl)
    for i in range(n):
        try:
            if parse_line(jsonl.line(i), kind, generation) is not None:
                good.append(i)
        except ValueError as e:
            bad.append(BadLine(i + 1, str(e)))
        if progress and i % 65536 == 0:
            progress(i, n)
    return good, bad


def checked_lines(jsonl: JsonlFile, kind: str, skip_bad_lines: bool = False, report=print,
                  generation: str | None = None) -> list[int]:
    """The sample lines to train on. Strict by default: the first bad line stops everything."""
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}")
    good, bad = scan(jsonl, kind, generation=generation)
    if bad and not skip_bad_lines:
        first = bad[0]
        if not good:  # skipping would leave nothing: the file is of another kind, or broken throughout
            raise DataError(f"{jsonl.path}:{first.line_number}: {first.reason}; no line of this file is a {kind} "
                            f"sample ({len(bad)} bad)")
        more = f" ({len(bad)} bad lines in all)" if len(bad) > 1 else ""
        raise DataError(f"{jsonl.path}:{first.line_number}: {first.reason}{more}. "
                        f"Fix the file, or pass --skip-bad-lines to train without them.")
    if bad:
        report(f"{jsonl.path}: skipping {len(bad)} bad line(s); first at line {bad[0].line_number}: {bad[0].reason}")
    if not good:
        raise DataError(f"{jsonl.path}: no usable {kind} samples"
                        + (f" ({len(bad)} bad lines skipped)" if bad else ""))
    return good
