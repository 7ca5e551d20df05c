"""Statistics of a training JSONL file: what is bad, what is duplicated, how long samples are once
tokenized, how much is lost to truncation and how much of it the loss actually sees.

Torch-free and Textual-free: the dashboard runs `compute_stats` in a thread worker and the CLI runs it
directly. One pass over the file; memory grows by about 16 bytes per line (line, length, hash), never
by the text itself. `should_stop` is polled between batches, so a cancel takes effect within one batch.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson

from .conversation import render_side, turns_of
from .jsonl import JsonlFile
from .masking import SampleEncoder
from .validate import BadLine, parse_line

BATCH = 256           # lines per tokenizer call and per cancel check
MAX_LISTED = 1000     # bad lines / examples kept with their line numbers (counts are always exact)

Progress = Callable[[int, int], None]


def bad_category(reason: str) -> str:
    """Coarse kind of a `validate.parse_line` reason, for the summary table."""
    if reason.startswith("not valid UTF-8"):
        return "encoding"
    if reason.startswith(("invalid JSON", "expected a JSON object")):
        return "json"
    if reason.startswith("missing"):
        return "missing_key"
    if reason == "empty conversation":
        return "empty_conversation"
    if "roles out of order" in reason or "unknown role" in reason:
        return "role_order"
    if "must be" in reason:
        return "wrong_type"
    return "other"


def detect_kind(raw_lines) -> str | None:
    """"sft" for {"conversations": ...}, "pretrain" for {"text": ...}, "dpo" for {"chosen": ..., "rejected": ...},
    from the first line that parses."""
    for raw in raw_lines:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            if "conversations" in obj:
                return "sft"
            if "text" in obj:
                return "pretrain"
            if "chosen" in obj and "rejected" in obj:
                return "dpo"
    return None


def detect_file_kind(jsonl: JsonlFile, probe: int = 1000) -> str | None:
    return detect_kind(jsonl.line(i) for i in range(min(probe, len(jsonl))))


@dataclass
class LengthSummary:
    min: int
    mean: float
    median: float
    p95: float
    max: int


@dataclass
class DatasetStats:
    path: str
    kind: str
    max_seq_len: int
    lines: int = 0                       # lines in the file (processed ones, if cancelled)
    blank_lines: int = 0
    samples: int = 0                     # good samples
    bad_lines: int = 0
    bad: list[BadLine] = field(default_factory=list)            # first MAX_LISTED, in file order
    bad_by_category: dict[str, int] = field(default_factory=dict)
    role_order_problems: int = 0
    duplicates: int = 0                  # samples equal to an earlier one (JSON content, key order ignored)
    duplicate_groups: int = 0
    duplicate_examples: list[tuple[int, int]] = field(default_factory=list)  # (line, line of first copy)
    tokenizer: str | None = None         # None: token statistics were not computed
    generation: str | None = None        # the tokenizer's MiniMind generation, whose rules checked the lines
    lengths: LengthSummary | None = None  # untruncated token lengths of good samples
    histogram: list[dict] = field(default_factory=list)        # {"lo", "hi", "count"}: lo <= length < hi
    truncated: int = 0                   # samples longer than max_seq_len
    truncated_share: float = 0.0
    truncated_tokens: int = 0            # tokens cut off in all
    zero_trained: int = 0                # samples whose loss mask is all zero at max_seq_len
    zero_trained_examples: list[int] = field(default_factory=list)  # line numbers
    pad_trained: int = 0                 # samples whose loss reaches into padding (e.g. ending on a user turn)
    pad_trained_examples: list[int] = field(default_factory=list)   # line numbers
    no_reply: int = 0                    # SFT samples with no assistant turn after the last user turn
    no_reply_examples: list[int] = field(default_factory=list)      # line numbers
    tokens_per_epoch: int = 0            # real (non-padding) positions the model reads
    trained_tokens_per_epoch: int = 0    # real positions the loss counts (never more than tokens_per_epoch)
    pad_trained_tokens_per_epoch: int = 0  # padding positions the loss counts too (the reference's mask)
    padded_tokens_per_epoch: int = 0     # positions with padding to max_seq_len, as the reference batches
    throughput: float | None = None      # tokens/s used for the estimate
    seconds_per_epoch: float | None = None
    processed_lines: int = 0
    complete: bool = False               # False when cancelled part-way
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duplicate_examples"] = [{"line": a, "first": b} for a, b in self.duplicate_examples]
        return d


DPO_SIDES = ("chosen", "rejected")


def _tokenize_batch(encoder: SampleEncoder, objs: list, lines: np.ndarray):
    """(untruncated length, trained positions at max_seq_len, of which padding positions) per sequence, by the
    rule of the tokenizer's generation (`masking.SampleEncoder`, as the datasets): one per pretraining or SFT
    sample, two per DPO pair (its chosen and rejected sides, rendered and masked as DPODataset does them)."""
    if encoder.kind == "dpo":
        sft = SampleEncoder(encoder.tokenizer, "sft", encoder.max_length)
        texts = [render_side(encoder.tokenizer, o[side]) for o in objs for side in DPO_SIDES]
        return _tokenize_texts(sft, texts)
    texts = [encoder.text(o, int(line)) for o, line in zip(objs, lines, strict=True)]  # line: random draws
    return _tokenize_texts(encoder, texts)


def _tokenize_texts(encoder: SampleEncoder, texts: list[str]):
    heads = [encoder.head(t) for t in texts]  # what the trainer tokenises: a long text's first max_length ids
    out = []
    extra = 2 if encoder.kind == "pretrain" and encoder.tokenizer.generation != "v1" else 0  # bos, eos added
    for text, head, ids in zip(texts, heads, encoder.tokenizer.encode_batch(heads), strict=True):
        kept, mask = encoder.finish(ids)
        # The rest of a long text is counted a piece at a time, never held as tokens.
        length = len(ids) + (encoder.tokenizer.count_tokens(text[len(head):]) if len(head) < len(text) else 0)
        kept_len = min(length + extra, encoder.max_length)
        # Position 0 is never a target (Y = ids[1:]); marks past the sample are padding the loss counts.
        out.append((length + extra, int(mask[1:kept_len].sum()), int(mask[kept_len:].sum())))
    return out


def has_reply(obj: dict) -> bool:
    """An SFT sample has something to learn from: an assistant turn after its last user turn. Without one the
    reference's loss mask runs on into padding (or there is nothing to train at all). A DPO pair needs one on
    both sides."""
    if "chosen" in obj and "conversations" not in obj:
        return all(has_reply({"conversations": obj[side]}) for side in DPO_SIDES)
    roles = [t.get("role") for t in turns_of(obj)]
    last_user = max((i for i, r in enumerate(roles) if r == "user"), default=-1)
    return "assistant" in roles[last_user + 1:]


def _histogram(lengths: np.ndarray, bins: int = 16) -> list[dict]:
    if not len(lengths):
        return []
    low, top = int(lengths.min()), int(lengths.max()) + 1
    raw_step = max(1, -(-(top - low) // bins))
    mag = 10 ** (len(str(raw_step)) - 1)
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw_step)  # a round bin width
    edges = np.arange(low // step * step, top + step, step)  # from the shortest sample, not from 0
    counts, _ = np.histogram(lengths, bins=edges)
    return [{"lo": int(lo), "hi": int(hi), "count": int(c)}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]


def compute_stats(jsonl: JsonlFile, kind: str, tokenizer=None, max_seq_len: int = 512,
                  throughput: float | None = None, progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None) -> DatasetStats:
    t0 = time.perf_counter()
    n = len(jsonl)
    st = DatasetStats(path=str(jsonl.path), kind=kind, max_seq_len=max_seq_len, throughput=throughput,
                      tokenizer=str(getattr(tokenizer, "path", None) or "given") if tokenizer else None,
                      generation=getattr(tokenizer, "generation", None))
    hashes = np.zeros(n, dtype=np.uint64)
    sample_lines = np.zeros(n, dtype=np.uint32)   # 0-based line of each good sample
    sides = len(DPO_SIDES) if kind == "dpo" else 1  # sequences per sample
    lengths = np.zeros(n * sides if tokenizer else 0, dtype=np.uint32)  # per sequence
    encoder = SampleEncoder(tokenizer, kind, max_seq_len) if tokenizer is not None else None
    i = 0
    while i < n:
        if should_stop and should_stop():
            break
        end = min(n, i + BATCH)
        objs, first_sample = [], st.samples
        for j in range(i, end):
            try:
                obj = parse_line(jsonl.line(j), kind, st.generation)
            except ValueError as e:
                _count_bad(st, BadLine(j + 1, str(e)))
                continue
            if obj is None:
                st.blank_lines += 1
                continue
            digest = hashlib.blake2b(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()
            hashes[st.samples] = int.from_bytes(digest, "little")
            sample_lines[st.samples] = j
            st.samples += 1
            objs.append(obj)
            if kind in ("sft", "dpo") and not has_reply(obj):
                st.no_reply += 1
                if len(st.no_reply_examples) < MAX_LISTED:
                    st.no_reply_examples.append(j + 1)
        if encoder is not None and objs:
            batch = _tokenize_batch(encoder, objs, sample_lines[first_sample:st.samples])
            for k in range(len(objs)):
                sequences = batch[k * sides:(k + 1) * sides]
                for q, (length, trained, pad_trained) in enumerate(sequences):
                    lengths[(first_sample + k) * sides + q] = length
                    st.trained_tokens_per_epoch += trained
                    st.pad_trained_tokens_per_epoch += pad_trained
                line_number = int(sample_lines[first_sample + k]) + 1
                # A sample with a sequence that trains nothing (a DPO side included) is listed, once.
                trained = min(t + p for _, t, p in sequences)
                pad_trained = max(p for _, _, p in sequences)
                if trained == 0:
                    st.zero_trained += 1
                    if len(st.zero_trained_examples) < MAX_LISTED:
                        st.zero_trained_examples.append(line_number)
                if pad_trained:
                    st.pad_trained += 1
                    if len(st.pad_trained_examples) < MAX_LISTED:
                        st.pad_trained_examples.append(line_number)
        i = end
        if progress:
            progress(i, n)
    st.processed_lines = i
    st.lines = i
    st.complete = i == n
    _duplicates(st, hashes[:st.samples], sample_lines[:st.samples])
    if tokenizer is not None:
        _token_summary(st, lengths[:st.samples * sides].astype(np.int64))
    st.elapsed_s = time.perf_counter() - t0
    return st


def _count_bad(st: DatasetStats, bad: BadLine) -> None:
    st.bad_lines += 1
    if len(st.bad) < MAX_LISTED:
        st.bad.append(bad)
    cat = bad_category(bad.reason)
    st.bad_by_category[cat] = st.bad_by_category.get(cat, 0) + 1
    if cat == "role_order":
        st.role_order_problems += 1


def _duplicates(st: DatasetStats, hashes: np.ndarray, lines: np.ndarray) -> None:
    """Equal hashes after a stable sort: the first in file order is the original. Only arrays of one value
    per line are allocated (the order and the sorted hashes), so a 2 GB file stays in tens of MB."""
    if len(hashes) < 2:
        return
    order = np.argsort(hashes, kind="stable")
    sh = hashes[order]
    repeat = np.flatnonzero(sh[1:] == sh[:-1]) + 1
    st.duplicates = len(repeat)
    if not len(repeat):
        return
    st.duplicate_groups = len(np.unique(sh[repeat]))
    first = np.searchsorted(sh, sh[repeat], side="left")  # start of each repeat's group of equal hashes
    dup_lines, first_lines = lines[order[repeat]], lines[order[first]]
    shown = np.argsort(dup_lines, kind="stable")[:MAX_LISTED]
    st.duplicate_examples = [(int(dup_lines[k]) + 1, int(first_lines[k]) + 1) for k in shown]


def _token_summary(st: DatasetStats, lengths: np.ndarray) -> None:
    if not len(lengths):
        return
    st.lengths = LengthSummary(int(lengths.min()), float(lengths.mean()), float(np.median(lengths)),
                               float(np.percentile(lengths, 95)), int(lengths.max()))
    st.histogram = _histogram(lengths)
    over = lengths > st.max_seq_len
    st.truncated = int(over.sum())
    st.truncated_share = st.truncated / len(lengths)
    st.truncated_tokens = int((lengths[over] - st.max_seq_len).sum())
    st.tokens_per_epoch = int(np.minimum(lengths, st.max_seq_len).sum())
    st.padded_tokens_per_epoch = len(lengths) * st.max_seq_len
    if st.throughput:
        st.seconds_per_epoch = st.tokens_per_epoch / st.throughput
