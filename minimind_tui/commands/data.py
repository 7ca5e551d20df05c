"""`minimind-tui data inspect|validate FILE`: what a training JSONL file holds, from the command line.

`inspect` prints the statistics the dashboard's Dataset tab shows (formatted by dataset/report.py; or `--json`
for scripts); `--line N` shows one sample as the trainer sees it (a DPO pair: its chosen, then its rejected
side). `validate` lists bad lines and exits 2 when there are any.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from minimind_tui.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect or validate a pretraining / SFT / DPO JSONL file")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    i = dsub.add_parser("inspect", help="statistics of a JSONL file: bad lines, duplicates, token lengths, "
                        "truncation, trained tokens, time per epoch")
    _common(i)
    i.add_argument("--max-seq-len", "--max_seq_len", dest="max_seq_len", type=int, default=512,
                   help="training sequence length: longer samples are truncated to it (default: 512)")
    i.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer directory (default: <root>/model/minimind_tokenizer, else the bundled demo one)")
    i.add_argument("--no-tokens", action="store_true",
                   help="skip tokenization: only lines, bad lines and duplicates (much faster)")
    i.add_argument("--throughput", type=float, default=None,
                   help="training speed in real (non-padding) tokens/s, to estimate the time per epoch")
    i.add_argument("--line", type=int, default=None,
                   help="instead of statistics, show line N as trained: template-rendered text, tokens, loss mask")
    i.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    i.set_defaults(func=run_inspect)
    v = dsub.add_parser("validate", help="list bad lines (FILE:LINE: reason); exit status 2 if there are any")
    _common(v)
    v.set_defaults(func=run_validate)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="JSONL file: one {\"text\"}, {\"conversations\"} or "
                   "{\"chosen\", \"rejected\"} object per line")
    p.add_argument("--kind", choices=["pretrain", "sft", "dpo"], default=None,
                   help="data kind (default: detected from the first good line)")
    p.add_argument("--rehash", action="store_true",
                   help="hash the whole file again even though its size, mtime, ctime and inode are those it was "
                   "last hashed with (the trainer then uses the new digest to find its caches)")


def _open(args):
    from dataset.jsonl import JsonlFile
    from dataset.stats import detect_file_kind

    jsonl = JsonlFile(args.file, progress=_progress_printer("indexing"), rehash=args.rehash)
    kind = args.kind or detect_file_kind(jsonl)
    if kind is None:
        raise UserError(f"{args.file}: cannot tell pretraining ({{\"text\": ...}}), SFT ({{\"conversations\": "
                        f"[...]}}) or DPO ({{\"chosen\": [...], \"rejected\": [...]}}) data in its first lines; "
                        f"pass --kind pretrain, sft or dpo")
    return jsonl, kind


def _progress_printer(what: str):
    if not sys.stderr.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct != last[0]:
            last[0] = pct
            print(f"\r{what} {pct:3d}%", end="" if pct < 100 else "\n", file=sys.stderr, flush=True)
    return show


def run_inspect(args) -> int:
    from dataset.preview import load_tokenizer
    from dataset.report import format_report
    from dataset.stats import compute_stats

    if args.max_seq_len < 2:
        raise UserError(f"--max-seq-len must be at least 2, got {args.max_seq_len}")
    jsonl, kind = _open(args)
    tok = None if args.no_tokens and args.line is None else load_tokenizer(args.tokenizer, root=args.root)
    if args.line is not None:
        return _show_line(args, jsonl, kind, tok)
    st = compute_stats(jsonl, kind, tok, args.max_seq_len, args.throughput,
                       progress=_progress_printer("scanning"))
    if args.json:
        print(json.dumps(st.to_dict(), ensure_ascii=False))
    else:
        print(format_report(st))
    return 0


def _show_line(args, jsonl, kind, tok) -> int:
    from dataset.preview import sample_from_raw, token_views
    from model.tokenizer import GENERATIONS

    if not 1 <= args.line <= len(jsonl):
        raise UserError(f"{args.file}: --line {args.line} is out of range (the file has {len(jsonl)} lines)")
    sample = sample_from_raw(jsonl.line(args.line - 1), args.line - 1, kind, tok.generation)
    if not sample.ok:
        raise UserError(f"{args.file}:{args.line}: {sample.error}")
    views = token_views(sample, tok, args.max_seq_len)
    if args.json:
        out = {"line": args.line, "kind": kind, "generation": tok.generation, "messages": sample.messages,
               "blocks": [asdict(b) for b in sample.blocks]}
        out.update(views[0][1].to_dict() if kind != "dpo" else {side: tv.to_dict() for side, tv in views})
        print(json.dumps(out, ensure_ascii=False))
        return 0
    later = f", {GENERATIONS[tok.generation]} tokenizer" if tok.generation != "v1" else ""  # v1 reads as before
    print(f"{args.file}:{args.line} ({kind}{later})")
    if kind == "dpo" or any(b.role in ("tools", "tool_call", "tool", "reasoning") for b in sample.blocks):
        for b in sample.blocks:  # what a plain role/content listing would hide (a DPO pair: which side)
            print(f"── {b.title} ──\n{b.text}")
        print()
    legend = "[trained] tokens are counted by the loss; text after ✂ is cut at max_seq_len\n"
    if kind != "dpo":
        print(_counts_line(views[0][1]))
        print(legend)
        print(_marked_text(views[0][1]))
        return 0
    print(legend)
    for side, tv in views:  # the pair as DPODataset encodes it: chosen, then rejected
        print(f"══ {side} ══\n{_counts_line(tv)}\n{_marked_text(tv)}\n")
    return 0


def _counts_line(tv) -> str:
    # Trained counts the sample's own tokens; padding positions the reference's mask reaches are said apart.
    return (f"tokens {tv.n_tokens}, kept {tv.n_kept}, truncated {tv.n_truncated}, trained {tv.n_trained_tokens}"
            + (f", and {tv.n_pad_trained} padding positions the loss counts" if tv.n_pad_trained else "")
            + (f", trained tokens lost to truncation {tv.n_trained_lost}" if tv.n_trained_lost else ""))


def _marked_text(tv) -> str:
    """The sequence's text with the trained tokens in [brackets] and the cut at max_seq_len marked ✂."""
    out, trained, cut = [], False, False
    for p in tv.pieces:
        if p.cut and not cut:
            out.append("]✂" if trained else "✂")
            trained, cut = False, True
        if not p.cut and p.trained != trained:
            out.append("[" if p.trained else "]")
            trained = p.trained
        out.append("<pad>" if p.pad else p.text)
    if trained:
        out.append("]")
    return "".join(out)


def run_validate(args) -> int:
    from dataset.report import LISTED
    from dataset.stats import compute_stats

    jsonl, kind = _open(args)
    st = compute_stats(jsonl, kind, progress=_progress_printer("checking"))
    for b in st.bad[:LISTED]:
        print(f"{args.file}:{b.line_number}: {b.reason}")
    if st.bad_lines > LISTED:
        print(f"... and {st.bad_lines - LISTED} more")
    if st.bad_lines:
        first = st.bad[0]
        raise UserError(f"{args.file}:{first.line_number}: {first.reason} ({st.bad_lines} bad of {st.lines} lines). "
                        f"Fix them, or train with --skip-bad-lines to leave them out.")
    if not st.samples:
        raise UserError(f"{args.file}: no {kind} samples in {st.lines} lines")
    for line in st.no_reply_examples[:LISTED]:  # valid, but nothing to learn from: the loss runs into padding
        print(f"{args.file}:{line}: no reply: no assistant turn after the last user turn")
    if st.no_reply > LISTED:
        print(f"... and {st.no_reply - LISTED} more")
    print(f"{args.file}: {st.samples:,} {kind} samples, no bad lines"
          + (f", {st.duplicates:,} duplicates" if st.duplicates else "")
          + (f", {st.no_reply:,} with no reply" if st.no_reply else ""))
    return 0
