"""MiniMind's tokenizer directory (tokenizer.json + tokenizer_config.json) through the `tokenizers` library.

The chat template is MiniMind's Jinja template re-expressed in Python, so nothing needs Jinja at run time.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

DEFAULT_SYSTEM_PROMPT = "你是 MiniMind，是一个有用的人工智能助手。"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2; <unk> doubles as padding


class TokenizerError(ValueError):
    user_facing = True


class Tokenizer:
    def __init__(self, backend: _HFTokenizer, config: dict, path: Path | None = None):
        self._tok = backend
        self.config = config
        self.path = path
        self.bos_token = config.get("bos_token", "<s>")
        self.eos_token = config.get("eos_token", "</s>")
        self.pad_token = config.get("pad_token") or config.get("unk_token", "<unk>")
        self.bos_token_id = self._id(self.bos_token)
        self.eos_token_id = self._id(self.eos_token)
        self.pad_token_id = self._id(self.pad_token)
        self.special_ids = {i for i, t in backend.get_added_tokens_decoder().items() if t.special}

    def _id(self, token: str) -> int:
        i = self._tok.token_to_id(token)
        if i is None:
            raise TokenizerError(f"special token {token!r} is not in the vocabulary of {self.path}")
        return i

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
        return cls(backend, config, path)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def fingerprint(self) -> str:
        """Content hash: token caches are keyed by it, so a different tokenizer never reuses them."""
        return hashlib.sha256(self._tok.to_str().encode()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        # MiniMind's tokenizer adds no special tokens on encode; "<s>" in text maps to its id.
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes one token stands for (byte-level BPE), for streaming without splitting a character."""
        if i in self.special_ids:
            return (self._tok.id_to_token(i) or "").encode()
        return bytes(_BYTE_DECODER[c] for c in self._tok.id_to_token(i) or "")

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True,
                            tokenize: bool = False):
        text = render_chat(messages, self.bos_token, self.eos_token)
        return self.encode(text) if tokenize else text

    def save(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(path / "tokenizer.json"))
        (path / "tokenizer_config.json").write_text(json.dumps(self.config, ensure_ascii=False, indent=2),
                                                    encoding="utf-8")


def render_chat(messages: list[dict], bos: str = "<s>", eos: str = "</s>") -> str:
    """MiniMind's chat template. Like the original, every user turn is followed by the assistant header,
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
