"""One sample as the trainer sees it: the chat messages, the template-rendered text, the token ids with
the per-token loss mask at a chosen max_seq_len, and where truncation cuts.

Torch-free and Textual-free (the Dataset tab and `data inspect` share it). The ids and mask are those of
`PretrainDataset`/`SFTDataset` (the same `masking.SampleEncoder`), so what is shown is what is trained, by the
rule of the tokenizer's MiniMind generation. `Sample.blocks` splits a conversation into what a reader should
tell apart: system and tool definitions, user turns, reasoning, replies, tool calls and tool responses. A DPO
pair is its two conversations one after the other (`token_views` gives one view per side, as `DPODataset`
encodes them).
"""
from __future__ import annotations

import codecs
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .conversation import TOOL_FIELD, as_json, render_side, turns_of
from .masking import SampleEncoder
from .tokenizer_dir import default_tokenizer_dir
from .validate import parse_line

_BOM = b"\xef\xbb\xbf"
DPO_SIDES = ("chosen", "rejected")  # a DPO line's two conversations, in DPODataset's order


@dataclass
class Block:
    """One part of a sample to show on its own: `role` is what it is (system, tools, user, reasoning, assistant,
    tool_call, tool, text) and `title` what to call it."""
    role: str
    title: str
    text: str


@dataclass
class Sample:
    index: int                 # 0-based line index
    kind: str
    raw: str                   # the line as text (undecodable bytes shown as U+FFFD)
    obj: dict | None = None    # None when the line is bad or blank
    error: str | None = None   # why the line is not a sample (validate.parse_line's reason)
    messages: list[dict] = field(default_factory=list)  # {"role", "content"}; pretrain: one "text" message
    blocks: list[Block] = field(default_factory=list)   # what the sample view shows, in order
    generation: str | None = None  # the tokenizer generation whose rules checked it (None: the line's shape)

    @property
    def line_number(self) -> int:
        return self.index + 1

    @property
    def ok(self) -> bool:
        return self.obj is not None


def sample_from_raw(raw: bytes, index: int, kind: str, generation: str | None = None) -> Sample:
    """`generation`: the tokenizer's (its rules check the line); None checks it by its own shape."""
    s = Sample(index=index, kind=kind, raw=raw.decode("utf-8", errors="replace"), generation=generation)
    try:
        s.obj = parse_line(raw, kind, generation)
    except ValueError as e:
        s.error = str(e)
        return s
    if s.obj is None:
        s.error = "blank line (not a sample)"
    elif kind == "sft":
        turns = turns_of(s.obj)
        s.messages = [{k: v for k, v in t.items() if v is not None} for t in turns]
        s.blocks = conversation_blocks(turns)
    elif kind == "dpo":
        for side in DPO_SIDES:  # each side's turns, their titles naming the side
            turns = turns_of({"conversations": s.obj[side]})
            s.messages += [{"side": side, **{k: v for k, v in t.items() if v is not None}} for t in turns]
            s.blocks += [Block(b.role, f"{side} · {b.title}", b.text) for b in conversation_blocks(turns)]
    else:
        s.messages = [{"role": "text", "content": s.obj["text"]}]
        s.blocks = [Block("text", "text", s.obj["text"])]
    return s


def _json_text(value) -> str:
    try:
        return json.dumps(as_json(value), ensure_ascii=False, indent=2)
    except ValueError:
        return str(value)


def _call_text(call) -> str:
    """A tool call as `name(arguments)`, the OpenAI-style "function" wrapper unwrapped."""
    if not isinstance(call, dict):
        return str(call)
    inner: dict = call["function"] if isinstance(call.get("function"), dict) else call
    args = inner.get("arguments")
    args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return f"{inner.get('name')}({args})"


def _split_think(content: str) -> tuple[str, str]:
    """(reasoning, reply) of a reply that starts with an inline `<think>...</think>` block, cut the way
    minimind-3's template cuts it; ("", content) when there is none."""
    if "</think>" not in content:
        return "", content
    reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, content.split("</think>")[-1].lstrip("\n")


def conversation_blocks(turns: list[dict]) -> list[Block]:
    """Each turn's parts as blocks: a system turn's tool definitions (MiniMind2 `functions`, minimind-3 `tools`)
    after its text, an assistant turn's reasoning (`reasoning_content` or an inline think block) before its
    reply and its tool calls after it. Display only: the token view shows the text exactly as trained."""
    out = []
    for turn in turns:
        role, content = turn["role"], turn.get("content") or ""
        calls = as_json(turn.get("tool_calls")) if turn.get("tool_calls") else []
        if role == "assistant":
            reasoning = turn.get("reasoning_content")
            if not isinstance(reasoning, str):
                reasoning, content = _split_think(content)
            if reasoning.strip("\n"):
                out.append(Block("reasoning", "reasoning", reasoning.strip("\n")))
        if content or not calls:
            out.append(Block(role, "tool response" if role == "tool" else role, content))
        for field_name in TOOL_FIELD.values():
            if role == "system" and turn.get(field_name):
                out.append(Block("tools", f"tools ({field_name})", _json_text(turn[field_name])))
        out += [Block("tool_call", "tool call", _call_text(c)) for c in (calls if isinstance(calls, list) else [])]
    return out


def head_lines(path, max_lines: int = 200, max_bytes: int = 4 << 20) -> tuple[list[bytes], bool]:
    """The first lines of a file read directly (no index), for showing the first page of a huge file
    while its index is built. Second value: True when the whole file was read."""
    with open(path, "rb") as f:
        data = f.read(max_bytes)
        whole = len(data) < max_bytes or not f.read(1)
    lines = data.split(b"\n")
    if not whole:
        lines = lines[:-1]  # the last piece may be cut mid-line
    elif lines and lines[-1] == b"":
        lines = lines[:-1]
    if len(lines) > max_lines:
        lines, whole = lines[:max_lines], False
    out = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if out and out[0].startswith(_BOM):
        out[0] = out[0][3:]
    return out, whole


@dataclass
class TokenPiece:
    id: int
    text: str           # the characters this token completes (byte-level BPE can split a character)
    trained: bool       # counted by the loss at max_seq_len
    special: bool = False
    pad: bool = False   # padding position (the reference's mask can reach into padding)
    cut: bool = False   # beyond max_seq_len: dropped by truncation
    would_train: bool = False  # a cut token the loss would have counted without truncation


@dataclass
class TokenView:
    prompt: str                  # the text that is tokenized (chat template applied for SFT)
    pieces: list[TokenPiece]
    max_seq_len: int
    n_tokens: int                # tokens of the whole rendered sample
    n_kept: int                  # tokens left after truncation
    n_truncated: int             # tokens cut off
    n_trained: int               # positions the loss counts
    n_pad_trained: int           # of which padding positions
    n_trained_lost: int          # loss positions truncation removed

    @property
    def n_trained_tokens(self) -> int:
        """The sample's own tokens the loss counts: never more than n_kept (padding positions the reference's
        mask reaches are n_pad_trained, said apart)."""
        return self.n_trained - self.n_pad_trained

    def to_dict(self) -> dict:
        return {**asdict(self), "n_trained_tokens": self.n_trained_tokens}


def _piece_texts(tokenizer, ids) -> list[str]:
    """Per token, the characters it completes: a CJK character split over three byte tokens appears on
    the third, so joining the texts gives the decoded string exactly."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    special: set[int] = getattr(tokenizer, "special_ids", set())
    out = []
    for i in ids:
        if i in special:
            out.append(dec.decode(b"", final=True) + (tokenizer.id_to_token(i) or ""))
        else:
            out.append(dec.decode(tokenizer.token_bytes(i)))
    return out


def _check_for(sample: Sample, tokenizer) -> None:
    """A sample checked by its shape alone is checked again by the rules of the tokenizer's generation (v1 has
    no tool turns: its template would drop them)."""
    generation = getattr(tokenizer, "generation", "v1")
    if sample.generation != generation:
        try:
            parse_line(sample.raw.encode("utf-8"), sample.kind, generation)
        except ValueError as e:
            raise ValueError(f"line {sample.line_number}: {e}") from None


def token_view(sample: Sample, tokenizer, max_seq_len: int, max_pieces: int | None = None) -> TokenView:
    """`max_pieces` limits the per-token pieces built (a multi-MB line has millions); counts cover everything.
    A DPO pair has two views: see `token_views`."""
    if sample.obj is None:  # not sample.ok
        raise ValueError(f"line {sample.line_number} is not a sample: {sample.error}")
    if sample.kind == "dpo":
        raise ValueError("a DPO pair has a token view per side: use token_views")
    _check_for(sample, tokenizer)
    assert sample.obj is not None  # sample.ok
    encoder = SampleEncoder(tokenizer, sample.kind, max_seq_len)
    return _view(encoder, encoder.text(sample.obj, sample.index), max_pieces)


def token_views(sample: Sample, tokenizer, max_seq_len: int, max_pieces: int | None = None
                ) -> list[tuple[str, TokenView]]:
    """(what it is, its view) for each sequence the sample trains: one for pretraining and SFT ("" names it);
    a DPO pair's chosen, then rejected side, each rendered and masked as `DPODataset` does (the SFT rule of the
    tokenizer's generation; `max_pieces` applies to each)."""
    if sample.kind != "dpo":
        return [("", token_view(sample, tokenizer, max_seq_len, max_pieces))]
    if sample.obj is None:
        raise ValueError(f"line {sample.line_number} is not a sample: {sample.error}")
    _check_for(sample, tokenizer)
    encoder = SampleEncoder(tokenizer, "sft", max_seq_len)
    return [(side, _view(encoder, render_side(tokenizer, sample.obj[side]), max_pieces)) for side in DPO_SIDES]


def _view(encoder: SampleEncoder, text: str, max_pieces: int | None) -> TokenView:
    """The view of one sequence: `text` (what is tokenised), its ids and mask by `encoder`'s rule."""
    tokenizer, max_seq_len = encoder.tokenizer, encoder.max_length
    # Every id is shown or counted, so the text is tokenised whole, but a piece at a time into 4 bytes an id.
    compact = getattr(tokenizer, "encode_compact", None)
    text_ids = compact(text) if compact else np.asarray(tokenizer.encode(text), dtype=np.int64)
    ids, mask = encoder.finish(text_ids)
    if encoder.kind == "sft":  # untruncated: its mask may reach into padding, as the kept one may
        full = text_ids
        _, full_mask = encoder.finish(text_ids, max(len(text_ids), max_seq_len))
    else:
        full, full_mask = encoder.finish(text_ids, len(text_ids) + 2)
    prompt = text
    cut_from = min(len(full), max_seq_len)  # where the tokens cut off start in `full`
    if encoder.kind == "pretrain" and tokenizer.generation != "v1":
        prompt = f"{tokenizer.bos_token}{text}{tokenizer.eos_token}"
        if len(full) > max_seq_len:
            cut_from -= 1  # the text is cut one earlier: the eos is kept at the end
    mask = mask.copy()
    if len(mask):
        mask[0] = 0  # position 0 is never a target: Y = ids[1:], loss_mask = mask[1:]
    special: set[int] = getattr(tokenizer, "special_ids", set())
    kept = min(len(full), max_seq_len)
    n_cut = len(full) - kept
    limit = len(full) + len(ids) if max_pieces is None else max_pieces
    # Order shown: kept tokens, padding the reference's mask reaches into, then the tokens cut off.
    order = [(int(ids[p]), bool(mask[p]), False, False) for p in range(min(kept, limit))]
    order += [(int(ids[kept + k]), bool(mask[kept + k]), True, False)
              for k in range(min(len(ids) - kept, max(0, limit - len(order))))]
    order += [(int(full[cut_from + k]), bool(full_mask[cut_from + k]), False, True)
              for k in range(min(n_cut, max(0, limit - len(order))))]
    texts = _piece_texts(tokenizer, [t for t, _, _, _ in order])
    pieces = [TokenPiece(t, text, flag and not cut, t in special, pad=pad, cut=cut, would_train=flag and cut)
              for (t, flag, pad, cut), text in zip(order, texts, strict=True)]
    return TokenView(prompt=prompt, pieces=pieces, max_seq_len=max_seq_len, n_tokens=len(full), n_kept=kept,
                     n_truncated=n_cut, n_trained=int(mask.sum()), n_pad_trained=int(mask[kept:].sum()),
                     n_trained_lost=int(full_mask[cut_from:cut_from + n_cut].sum()))


def load_tokenizer(path=None, root=None):
    """Tokenizer.from_dir without importing torch (model/__init__ imports the network lazily)."""
    from model.tokenizer import Tokenizer
    return Tokenizer.from_dir(Path(path) if path else default_tokenizer_dir(root))

