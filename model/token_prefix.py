"""Where a text can be cut so that its tokens begin exactly as the whole text's do.

Training keeps only the first max_seq_len tokens of a sample, but tokenising a whole multi-MB line first costs
about 130-210 bytes of RAM per byte of text (the tokenizer's per-token records). Tokenising a prefix is enough
if the prefix is long enough and cut where the tokenizer would have split anyway:

- MiniMind's tokenizers (every generation) are byte-level BPE behind GPT-2's split, the regex
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`, with no normaliser. A token
  never spans two pieces of that split, and the split looks at most one character past each piece, so at a
  position c where a piece ends whatever follows (`safe_cut`), the pieces of text[:c] are the whole text's
  pieces before c and those of text[c:] the rest: encode(text) == encode(text[:c]) + encode(text[c:]).
- A piece ends at c whatever follows when text[c-1] is a letter, number or other visible character and
  text[c] is one of another of those classes (the greedy run stops there), or is a single space before such
  a character (the space opens the next piece), and no contraction (`'s` ...) or added token (`<|im_end|>`,
  matched before the split) spans c. Whitespace runs, controls and code points the tables may classify
  differently (format, private use, unassigned) are never cut next to.
- A token stands for at most `max_token_bytes` bytes and a character for at least one, so a prefix of
  n * max_token_bytes characters holds at least n tokens.

`Tokenizer.head`, `count_tokens` and `encode_compact` (model/tokenizer.py) use this only for tokenizers whose
configuration is exactly that (`cuttable`); any other tokenizer is tokenised whole.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable

_CLASS = {"L": "L", "N": "N", "P": "O", "S": "O", "M": "O"}  # Unicode major category -> the split's run class
_ASCII = [_CLASS.get(unicodedata.category(chr(i))[0]) for i in range(128)]


def char_class(ch: str) -> str | None:
    """"L" letter, "N" number, "O" another visible character; None where no cut may touch (whitespace,
    controls, format characters, private use, unassigned)."""
    o = ord(ch)
    if o < 128:
        return _ASCII[o]
    return _CLASS.get(unicodedata.category(ch)[0])


def is_safe_cut(text: str, c: int, added: Iterable[str] = ()) -> bool:
    """Whether encode(text) == encode(text[:c]) + encode(text[c:]) by the rule in the module's doc."""
    if c < 2 or c >= len(text) - 1:
        return False
    left = char_class(text[c - 1])
    if left is None or text[c - 1] == "'" or text[c - 2] == "'":
        return False
    right = char_class(text[c])
    if right is None:
        if text[c] != " " or char_class(text[c + 1]) is None:
            return False
    elif right == left:
        return False
    return not any(text.find(t, max(0, c - len(t) + 1), c + len(t) - 1) >= 0 for t in added if len(t) > 1)


def safe_cut(text: str, start: int, added: Iterable[str] = ()) -> int | None:
    """The first safe cut at or after `start`, or None (then only the whole text is safe)."""
    added = tuple(added)
    for c in range(max(start, 2), len(text) - 1):
        if is_safe_cut(text, c, added):
            return c
    return None


def cuttable(config: dict) -> bool:
    """Whether a tokenizer.json (parsed) tokenises as the module's doc assumes: no normaliser, exactly GPT-2's
    byte-level split, a deterministic BPE model, no added token that matches only as a whole word."""
    pre = config.get("pre_tokenizer") or {}
    model = config.get("model") or {}
    return (config.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and model.get("type") == "BPE" and model.get("dropout") is None
            and not any(t.get("single_word") for t in config.get("added_tokens") or []))
