"""The data report: a JSONL file's statistics (dataset.stats.DatasetStats) as the text `data inspect` prints
and the dashboard's Dataset tab shows. Plain text, no Textual: both front ends format through it."""
from __future__ import annotations

from .stats import DatasetStats

LISTED = 20  # bad lines / examples printed in the human-readable report


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if h or d else "") + f"{m}m {s:02d}s"


def format_report(st: DatasetStats, list_bad: bool = True) -> str:
    """The human-readable report; the Dataset tab shows the same figures (its table lists the bad lines)."""
    lines = [f"{st.path}: {st.kind}, {st.lines:,} lines, {_count(st.samples, 'sample')}, "
             f"{_count(st.bad_lines, 'bad line')}"
             + (f", {st.blank_lines:,} blank" if st.blank_lines else "")
             + ("" if st.complete else " (cancelled: partial)")]
    if st.bad_by_category:
        lines.append("bad lines by kind: " + ", ".join(f"{k} {v:,}" for k, v in sorted(st.bad_by_category.items())))
    sft = st.kind in ("sft", "dpo")  # conversations: roles, replies and masks that reach into padding
    if sft:
        lines.append(f"role-order problems: {st.role_order_problems:,}")
        lines.append(f"samples with no reply (no assistant turn after the last user turn): {st.no_reply:,}"
                     + _examples(st.no_reply, st.no_reply_examples))
    repeat = "repeats" if st.duplicates == 1 else "repeat"
    lines.append(f"duplicates: {_count(st.duplicates, 'sample')} {repeat} an earlier one "
                 f"({_count(st.duplicate_groups, 'group')})")
    for line, first in st.duplicate_examples[:5]:
        lines.append(f"  line {line} = line {first}")
    if st.lengths is None:
        lines.append("token statistics: skipped (no tokenizer)")
    else:
        L = st.lengths
        generation = ""
        if st.generation not in (None, "v1"):  # v1's report reads as before
            from model.tokenizer import GENERATIONS  # a tokenizer was loaded for these statistics already
            generation = f" ({GENERATIONS[st.generation]})"
        pairs = st.kind == "dpo"  # token figures count sequences: a pair's chosen and rejected sides
        lines += [f"tokenizer: {st.tokenizer}{generation}, max_seq_len {st.max_seq_len}"
                  + (" (token figures count each pair's chosen and rejected sides)" if pairs else ""),
                  f"token lengths: min {L.min}, median {L.median:g}, mean {L.mean:.1f}, p95 {L.p95:g}, max {L.max}",
                  f"truncated: {st.truncated:,} {'sequences' if pairs else 'samples'} "
                  f"({100 * st.truncated_share:.1f}%), "
                  f"{st.truncated_tokens:,} tokens cut",
                  f"samples with zero trained tokens: {st.zero_trained:,}"
                  + _examples(st.zero_trained, st.zero_trained_examples)]
        if sft:
            lines.append(f"samples whose loss reaches into padding (a reply cut by truncation, or none after the "
                         f"last user turn): {st.pad_trained:,}" + _examples(st.pad_trained, st.pad_trained_examples))
        padding = (f"; the loss also counts {st.pad_trained_tokens_per_epoch:,} padding positions"
                   if st.pad_trained_tokens_per_epoch else "")
        lines.append(f"per epoch: {st.tokens_per_epoch:,} tokens ({st.padded_tokens_per_epoch:,} positions padded "
                     f"to max_seq_len), {st.trained_tokens_per_epoch:,} of them trained{padding}")
        if st.seconds_per_epoch is not None:
            lines.append(f"time per epoch at {st.throughput:,.0f} tokens/s: {_duration(st.seconds_per_epoch)}")
        lines.append("token-length histogram:")
        lines += histogram_lines(st.histogram, st.max_seq_len)
    if st.bad and list_bad:
        lines.append("bad lines:")
        lines += [f"  {st.path}:{b.line_number}: {b.reason}" for b in st.bad[:LISTED]]
        if st.bad_lines > LISTED:
            lines.append(f"  ... and {st.bad_lines - LISTED:,} more")
    return "\n".join(lines)


def _examples(n: int, lines: list[int]) -> str:
    """" (lines 3, 8, ...)" after a count, or nothing when it is 0."""
    if not n:
        return ""
    return f" ({_lines_word(n)} {', '.join(map(str, lines[:5]))}" + (", ..." if n > 5 else "") + ")"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _lines_word(n: int) -> str:
    return "line" if n == 1 else "lines"


def histogram_lines(histogram: list[dict], max_seq_len: int, width: int = 40) -> list[str]:
    top = max((b["count"] for b in histogram), default=0) or 1
    out = []
    for b in histogram:
        mark = " ✂" if b["lo"] <= max_seq_len < b["hi"] else ""
        bar = "█" * max(1 if b["count"] else 0, round(width * b["count"] / top))
        out.append(f"  {b['lo']:>6}-{b['hi'] - 1:<6} {bar} {b['count']:,}{mark}")
    return out
