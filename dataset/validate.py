"""What makes a JSONL line a valid pretraining or SFT sample, and the strict / skip-bad-lines policy."""
from __future__ import annotations

from dataclasses import dataclass

import orjson

from .errors import DataError
from .jsonl import JsonlFile

KINDS = ("pretrain", "sft")
ROLES = ("system", "user", "assistant")


@dataclass
class BadLine:
    line_number: int  # 1-based, as editors show it
    reason: str


def parse_line(raw: bytes, kind: str):
    """Parsed sample, or raises ValueError(reason). Blank lines are returned as None (not samples)."""
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
    else:
        check_conversation(obj)
    return obj


def check_conversation(obj: dict) -> None:
    if "conversations" not in obj:
        hint = " (this looks like pretraining data: use train pretrain)" if "text" in obj else ""
        raise ValueError(f'missing "conversations" key{hint}')
    conv = obj["conversations"]
    if not isinstance(conv, list):
        raise ValueError(f'"conversations" must be a list, found {type(conv).__name__}')
    if not conv:
        raise ValueError("empty conversation")
    expected = "user"
    for t, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {t + 1} must be an object, found {type(turn).__name__}")
        if not isinstance(turn.get("content"), str):
            raise ValueError(f'turn {t + 1}: "content" must be a string')
        role = turn.get("role", expected)  # MiniMind assigns roles by position when absent
        if role not in ROLES:
            raise ValueError(f"turn {t + 1}: unknown role {role!r} (use system, user or assistant)")
        if role == "system" and t == 0:
            continue
        if role != expected:
            raise ValueError(f"turn {t + 1}: roles out of order: expected {expected}, found {role}")
        expected = "assistant" if expected == "user" else "user"


def messages_of(obj: dict) -> list[dict]:
    """The conversation as chat-template messages, roles filled in by position where absent."""
    out, expected = [], "user"
    for t, turn in enumerate(obj["conversations"]):
        role = turn.get("role") or expected
        out.append({"role": role, "content": turn["content"]})
        if not (role == "system" and t == 0):
            expected = "assistant" if role == "user" else "user"
    return out


def scan(jsonl: JsonlFile, kind: str, progress=None) -> tuple[list[int], list[BadLine]]:
    """Indices of good sample lines and the bad lines with reasons. Parses every line once."""
    good: list[int] = []
    bad: list[BadLine] = []
    n = len(jsonl)
    for i in range(n):
        try:
            if parse_line(jsonl.line(i), kind) is not None:
                good.append(i)
        except ValueError as e:
            bad.append(BadLine(i + 1, str(e)))
        if progress and i % 65536 == 0:
            progress(i, n)
    return good, bad


def checked_lines(jsonl: JsonlFile, kind: str, skip_bad_lines: bool = False, report=print) -> list[int]:
    """The sample lines to train on. Strict by default: the first bad line stops everything."""
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r}")
    good, bad = scan(jsonl, kind)
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
