"""`minimind-tui tokenizer train`: a byte-level BPE tokenizer from JSONL data."""
from __future__ import annotations

import argparse
from pathlib import Path

from minimind_tui.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a MiniMind-style tokenizer")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    t = tsub.add_parser("train", help="train a byte-level BPE tokenizer on pretraining or SFT JSONL",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", required=True, nargs="+", type=Path, help="JSONL file(s): {text} or {conversations}")
    t.add_argument("--vocab-size", "--vocab_size", dest="vocab_size", type=int, default=6400,
                   help="vocabulary size including the 3 special tokens")
    t.add_argument("--out", required=True, type=Path, help="output directory (tokenizer.json + tokenizer_config.json)")
    t.set_defaults(func=run_train)


def run_train(args) -> int:
    from model.tokenizer_train import train_tokenizer

    for p in args.data:
        if not p.is_file():
            raise UserError(f"{p}: no such file; pass --data FILE.jsonl")
    try:
        tok = train_tokenizer(args.data, args.vocab_size, args.out, progress=True)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"tokenizer with {tok.vocab_size} tokens written to {args.out}")
    return 0
