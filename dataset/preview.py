"""One sample as the trainer sees it: the chat messages, the template-rendered text, the token ids with
the per-token loss mask at a chosen max_seq_len, and where truncation cuts.

Torch-free and Textual-free (the Dataset tab and `data inspect` share it). The ids and mask are those of
`PretrainDataset`/`SFTDataset` (same helpers in `masking.py`), so what is shown is what is trained.
"""
from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .masking import finish_sft, pretrain_ids, sft_markers
from .tokenizer_dir import default_tokenizer_dir
from .validate import messages_of, parse_line

_BOM = b"\xef\xbb\xbf"


@dataclass
class Sample:
    index: int                 # 0-based line index
    kind: str
    raw: str                   # the line as text (undecodable bytes shown as U+FFFD)
    obj: dict | None = None    # None when the line is bad or blank
    error: str | None = None   # why the line is not a sample (validate.parse_line's reason)
    messages: list[dict] = field(default_factory=list)  # {"role", "content"}; pretrain: one "text" message

    @property
    def line_number(self) -> int:
        return self.index + 1

    @property
    def ok(self) -> bool:
        return self.obj is not None


def sample_from_raw(raw: bytes, index: int, kind: str) -> Sample:
    s = Sample(index=index, kind=kind, raw=raw.decode("utf-8", errors="replace"))
    try:
        s.obj = parse_line(raw, kind)
    except ValueError as e:
        s.error = str(e)
        return s
    if s.obj is None:
        s.error = "blank line (not a sample)"
    elif kind == "sft":
        s.messages = messages_of(s.obj)
    else:
        s.messages = [{"role": "text", "content": s.obj["text"]}]
    return s


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

    def to_dict(self) -> dict:
        return asdict(self)


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


def token_view(sample: Sample, tokenizer, max_seq_len: int, max_pieces: int | None = None) -> TokenView:
    """`max_pieces` limits the per-token pieces built (a multi-MB line has millions); counts cover everything."""
    if sample.obj is None:  # not sample.ok
        raise ValueError(f"line {sample.line_number} is not a sample: {sample.error}")
    pad = tokenizer.pad_token_id
    if sample.kind == "sft":
        from model.tokenizer import render_chat  # torch-free module
        prompt = render_chat(sample.messages, tokenizer.bos_token, tokenizer.eos_token)
        full = np.asarray(tokenizer.encode(prompt), dtype=np.int64)
        head, tail = sft_markers(tokenizer)
        ids, mask = finish_sft(full[:max_seq_len], head, tail, max_seq_len, pad)
        _, full_mask = finish_sft(full, head, tail, max(len(full), max_seq_len), pad)
    else:
        prompt = f"{tokenizer.bos_token}{sample.obj['text']}{tokenizer.eos_token}"
        ids, mask = pretrain_ids(tokenizer, sample.obj["text"], max_seq_len)
        full = np.asarray(tokenizer.encode(prompt), dtype=np.int64)
        full_mask = (full != pad).astype(np.uint8)
    mask = mask.copy()
    if len(mask):
        mask[0] = 0  # position 0 is never a target: Y = ids[1:], loss_mask = mask[1:]
    special: set[int] = getattr(tokenizer, "special_ids", set())
    kept = min(len(full), max_seq_len)
    limit = len(full) + len(ids) if max_pieces is None else max_pieces
    # Order shown: kept tokens, padding the reference's mask reaches into, then the tokens cut off.
    order = [(p, int(full[p]), bool(mask[p]), False, False) for p in range(min(kept, limit))]
    order += [(kept + k, int(ids[kept + k]), bool(mask[kept + k]), True, False)
              for k in range(min(len(ids) - kept, max(0, limit - len(order))))]
    order += [(p, int(full[p]), bool(full_mask[p]), False, True)
              for p in range(kept, min(len(full), kept + max(0, limit - len(order))))]
    texts = _piece_texts(tokenizer, [t for _, t, _, _, _ in order])
    pieces = [TokenPiece(t, text, flag and not cut, t in special, pad=pad, cut=cut, would_train=flag and cut)
              for (_, t, flag, pad, cut), text in zip(order, texts, strict=True)]
    n_trained = int(mask.sum())
    return TokenView(prompt=prompt, pieces=pieces, max_seq_len=max_seq_len, n_tokens=len(full), n_kept=kept,
                     n_truncated=len(full) - kept, n_trained=n_trained,
                     n_pad_trained=int(mask[kept:].sum()),
                     n_trained_lost=int(full_mask[kept:].sum()))


def load_tokenizer(path=None, root=None):
    """Tokenizer.from_dir without importing torch (model/__init__ imports the network lazily)."""
    from model.tokenizer import Tokenizer
    return Tokenizer.from_dir(Path(path) if path else default_tokenizer_dir(root))

