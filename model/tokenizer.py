"""A MiniMind tokenizer directory (tokenizer.json + tokenizer_config.json) through the `tokenizers` library,
for every MiniMind generation.

The generation decides what a conversation means for training (which marker ids surround the trained reply,
how tools and reasoning are given); it is told by the tokenizer itself:

- "v1": the April 2025 code (`model/minimind_tokenizer`): ids 0/1/2 are `<unk>`/`<s>`/`</s>`.
- "gen2": MiniMind2 (April 2025 to March 2026): the same vocabulary and merges, ids 0/1/2 renamed
  `<|endoftext|>`/`<|im_start|>`/`<|im_end|>`.
- "gen3": minimind-3 (March 2026 on): a new BPE with the same 0/1/2, ids 3-20 special (vision, audio, tts,
  box markers) and 21-35 (`<tool_call>`, `</tool_call>`, `<tool_response>`, `</tool_response>`, `<think>`,
  `</think>`, `<|buffer1|>`...) single tokens that are not special (decoding with skip_special_tokens keeps them).

Chat templates are the folder's own Jinja `chat_template` (model/chat_template.py). A folder without one gets
v1's format rendered in Python (`render_chat`), which is also used for v1's own template: tests check that the
two render alike, and it is about ten times faster than Jinja when a token cache renders millions of samples.
"""
from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer as _HFTokenizer

from dataset.tokenizer_dir import detect_generation  # the rule, torch- and tokenizers-free for the dashboard

from . import token_prefix
from .config import GENERATIONS

if TYPE_CHECKING:
    from .chat_template import ChatTemplate

DEFAULT_SYSTEM_PROMPT = "你是 MiniMind，是一个有用的人工智能助手。"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # v1 ids 0, 1, 2; <unk> doubles as padding

PIECE_CHARS = 1 << 16  # characters tokenised at a time when a long text is counted or encoded whole

THINKING_SWITCHES = ("open_thinking", "enable_thinking")  # minimind-3's, MiniMind2's (Tokenizer.thinking_switch)

# v1's Jinja template (tokenizer_config.json of model/minimind_tokenizer and of tokenizers trained here):
# `render_chat` renders exactly this.
V1_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}"
    "{{ '<s>system\\n' + system_message + '</s>\\n' }}{% else %}"
    "{{ '<s>system\\n你是 MiniMind，是一个有用的人工智能助手。</s>\\n' }}{% endif %}"
    "{% for message in messages %}{% set content = message['content'] %}"
    "{% if message['role'] == 'user' %}{{ '<s>user\\n' + content + '</s>\\n<s>assistant\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ content + '</s>' + '\\n' }}{% endif %}{% endfor %}"
)


class TokenizerError(ValueError):
    user_facing = True


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


class Tokenizer:
    def __init__(self, backend: _HFTokenizer, config: dict, path: Path | None = None):
        self._tok = backend
        self.config = config
        self.path = path
        self.bos_token = _token_text(config.get("bos_token")) or "<s>"
        self.eos_token = _token_text(config.get("eos_token")) or "</s>"
        self.pad_token = _token_text(config.get("pad_token")) or _token_text(config.get("unk_token")) or "<unk>"
        self.bos_token_id = self._id(self.bos_token)
        self.eos_token_id = self._id(self.eos_token)
        self.pad_token_id = self._id(self.pad_token)
        added = backend.get_added_tokens_decoder()
        self.special_ids = {i for i, t in added.items() if t.special}
        self.added_ids = set(added)  # special or not, each is one token spelled literally (no byte-level BPE)
        self.generation = detect_generation(self.bos_token, {t.content for t in added.values()})
        self._template_text = self._template_of(config.get("chat_template"))
        self._template: ChatTemplate | None = None  # compiled when first used: pretraining never needs it
        head, tail = self._markers()
        self.sft_start_ids: list[int] = head
        self.sft_end_ids: list[int] = tail

    def _id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise TokenizerError(f"special token {token!r} is not in the vocabulary of {self.path}")
        return i

    @staticmethod
    def _template_of(template) -> str | None:
        """The folder's chat template (None: v1's format, rendered in Python by `render_chat`); a list of named
        templates (transformers' format) gives its "default"."""
        if isinstance(template, list):
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        if not isinstance(template, str) or not template or template == V1_CHAT_TEMPLATE:
            return None
        return template

    def _markers(self) -> tuple[list[int], list[int]]:
        """The ids an SFT loss mask looks for around each assistant reply. v1's reference matches `<s>assistant`
        and `</s>` (its off-by-one then skips the newline after the first and takes the one after the second,
        see dataset/masking.py); MiniMind2 and minimind-3 match `<|im_start|>assistant\\n` and `<|im_end|>\\n`."""
        newline = "" if self.generation == "v1" else "\n"
        return self.encode(f"{self.bos_token}assistant{newline}"), self.encode(f"{self.eos_token}{newline}")

    @classmethod
    def from_dir(cls, path) -> Tokenizer:
        path = Path(path)
        tj, tc = path / "tokenizer.json", path / "tokenizer_config.json"
        if not tj.is_file():
            raise TokenizerError(f"{tj}: no tokenizer.json here; pass --tokenizer DIR naming a MiniMind tokenizer "
                                 f"directory (tokenizer.json + tokenizer_config.json)")
        try:
            backend = _HFTokenizer.from_file(str(tj))
        except Exception as e:  # the Rust library raises a bare Exception on malformed files
            raise TokenizerError(f"{tj}: not a valid tokenizer file ({e})") from None
        config = {}
        if tc.is_file():
            try:
                config = json.loads(tc.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise TokenizerError(f"{tc}:{e.lineno}: invalid JSON ({e.msg})") from None
            except RecursionError:
                raise TokenizerError(f"{tc}: JSON nested too deeply; not a tokenizer config") from None
            if not isinstance(config, dict):
                raise TokenizerError(f"{tc}: expected a JSON object (special tokens, chat_template), "
                                     f"found a {type(config).__name__}")
        return cls(backend, config, path)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def generation_name(self) -> str:
        return GENERATIONS[self.generation]

    @property
    def chat_template(self) -> str:
        return self._template_text or V1_CHAT_TEMPLATE

    @property
    def thinking_switch(self) -> str | None:
        """The chat-template keyword that turns reasoning on or off, for apply_chat_template: minimind-3's
        `open_thinking` (true: the prompt opens a think block; otherwise it closes an empty one), MiniMind2's
        `enable_thinking` (false: an empty think block is added); None when the template has neither (v1)."""
        text = self._template_text or ""
        return next((name for name in THINKING_SWITCHES if name in text), None)

    @property
    def takes_reasoning(self) -> bool:
        """Whether the template renders an assistant turn's `reasoning_content` (minimind-3's): a reply's
        reasoning is then kept in the history apart from its content, as the template expects it."""
        return "reasoning_content" in (self._template_text or "")

    def fingerprint(self) -> str:
        """Content hash: token caches are keyed by it, so a different tokenizer never reuses them. A chat
        template of its own is part of it (it decides what SFT samples are); v1's leaves the hash as it was."""
        text = self._tok.to_str() + (self._template_text or "")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        # MiniMind's tokenizers add no special tokens on encode; "<s>" in text maps to its id.
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    # ----- long texts: a prefix, or a chunk at a time (model/token_prefix.py says why this is exact) -----
    def _cut_rule(self) -> tuple[int, tuple[str, ...]] | None:
        """(most bytes one token stands for, the added tokens' texts) when texts may be cut, else None."""
        if not hasattr(self, "_cut_rule_value"):
            rule = None
            if token_prefix.cuttable(json.loads(self._tok.to_str())):
                most = max((len(self.token_bytes(i)) for i in range(self.vocab_size)), default=1)
                added = tuple(t.content for t in self._tok.get_added_tokens_decoder().values())
                rule = (max(most, 1), added)
            self._cut_rule_value = rule
        return self._cut_rule_value

    def head(self, text: str, n: int) -> str:
        """A prefix of `text` whose tokens are the first of `text`'s, at least n of them (the whole text when it
        is shorter or has no safe cut), so encode(head(t, n))[:n] == encode(t)[:n] at a cost bounded by n."""
        rule = self._cut_rule()
        if rule is None or len(text) <= n * rule[0]:
            return text
        cut = token_prefix.safe_cut(text, n * rule[0], rule[1])
        return text if cut is None else text[:cut]

    def pieces(self, text: str, chars: int = PIECE_CHARS) -> Iterator[str]:
        """`text` in consecutive pieces of about `chars` characters, cut where the tokens of the pieces, one
        after another, are exactly the tokens of the whole."""
        rule = self._cut_rule()
        at = 0
        while at < len(text):
            cut = token_prefix.safe_cut(text, at + chars, rule[1]) if rule and len(text) - at > chars else None
            end = len(text) if cut is None else cut
            yield text[at:end]
            at = end

    def count_tokens(self, text: str) -> int:
        """len(encode(text)), a piece at a time: memory bounded by the piece, not the text."""
        return sum(len(self.encode(piece)) for piece in self.pieces(text))

    def encode_compact(self, text: str) -> np.ndarray:
        """encode(text) as int32, a piece at a time: 4 bytes a token instead of the tokenizer's ~200."""
        out = array("i")  # grows in place: no list of parts to join at the end
        for piece in self.pieces(text):
            out.extend(self.encode(piece))
        return np.frombuffer(out, dtype=np.int32) if out else np.zeros(0, np.int32)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes one token stands for (byte-level BPE), for streaming without splitting a character."""
        if i in self.added_ids:
            return (self._tok.id_to_token(i) or "").encode()
        return bytes(_BYTE_DECODER[c] for c in self._tok.id_to_token(i) or "")

    def template_variables(self) -> dict:
        """What transformers passes to every template besides the messages: the special tokens."""
        names = ("bos_token", "eos_token", "unk_token", "pad_token")
        out: dict[str, object] = {n: _token_text(self.config.get(n)) for n in names if self.config.get(n) is not None}
        out["additional_special_tokens"] = [_token_text(t) for t in self.config.get("additional_special_tokens") or []]
        return out

    def apply_chat_template(self, messages: list[dict], tools: list | None = None, add_generation_prompt: bool = True,
                            tokenize: bool = False, **kwargs):
        """The conversation as the model reads it. `kwargs` pass through to the template (`enable_thinking` for
        MiniMind2, `open_thinking` for minimind-3). A template error raises ChatTemplateError naming this folder's
        tokenizer_config.json and the message it was reading."""
        if self._template_text is None:
            text = render_chat(messages, self.bos_token, self.eos_token)
        else:
            if self._template is None:
                from .chat_template import ChatTemplate  # jinja2 only where a template is rendered

                source = self.path / "tokenizer_config.json" if self.path else "tokenizer_config.json"
                self._template = ChatTemplate(self._template_text, str(source))
            text = self._template.render(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                         variables=self.template_variables(), **kwargs)
        return self.encode(text) if tokenize else text

    def save(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(path / "tokenizer.json"))
        (path / "tokenizer_config.json").write_text(json.dumps(self.config, ensure_ascii=False, indent=2),
                                                    encoding="utf-8")


def render_chat(messages: list[dict], bos: str = "<s>", eos: str = "</s>") -> str:
    """MiniMind v1's chat template. Like the original, every user turn is followed by the assistant header,
    so `add_generation_prompt` changes nothing, and a default system prompt is used when none is given."""
    if not messages:
        raise TokenizerError("cannot render an empty conversation")
    if messages[0]["role"] == "system":
        parts = [f"{bos}system\n{messages[0]['content']}{eos}\n"]
    else:
        parts = [f"{bos}system\n{DEFAULT_SYSTEM_PROMPT}{eos}\n"]
    for m in messages:
        if m["role"] == "user":
            parts.append(f"{bos}user\n{m['content']}{eos}\n{bos}assistant\n")
        elif m["role"] == "assistant":
            parts.append(f"{m['content']}{eos}\n")
    return "".join(parts)


def _byte_level_decoder() -> dict[str, int]:
    # GPT-2's reversible byte <-> printable-unicode map used by byte-level BPE.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


_BYTE_DECODER = _byte_level_decoder()
