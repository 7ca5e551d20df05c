"""Turning a stream of token ids into text without ever showing half a character.

Byte-level BPE splits a multi-byte UTF-8 character (most Chinese characters, every emoji) across tokens,
so decoding token by token would print replacement characters. We keep the raw bytes of each token and
hand out only complete characters; an incomplete tail waits for the next token.
"""
from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator

from .tokenizer import Tokenizer


class StreamDecoder:
    """feed(token_id) -> the new complete text (possibly ""); finish() -> whatever is left."""

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        # "replace" only ever applies to bytes that can never become a character (or a truncated tail at
        # finish()): an incremental decoder holds back a prefix that may still complete.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""  # everything handed out so far

    def feed(self, token_id: int) -> str:
        if self.skip_special_tokens and token_id in self.tokenizer.special_ids:
            return ""
        piece = self._utf8.decode(self.tokenizer.token_bytes(token_id))
        self.text += piece
        return piece

    def finish(self) -> str:
        piece = self._utf8.decode(b"", final=True)
        self.text += piece
        return piece


def stream_text(tokenizer: Tokenizer, token_ids: Iterable[int], skip_special_tokens: bool = True) -> Iterator[str]:
    """Non-empty text pieces, in order, for a stream of token ids."""
    decoder = StreamDecoder(tokenizer, skip_special_tokens)
    for token_id in token_ids:
        piece = decoder.feed(token_id)
        if piece:
            yield piece
    tail = decoder.finish()
    if tail:
        yield tail
