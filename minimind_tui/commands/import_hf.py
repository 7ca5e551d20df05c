"""`minimind-tui import HF_DIR`: a Hugging Face (Llama-format) model folder as a native .pth checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="turn a Hugging Face Llama-format folder into a native .pth checkpoint",
        description="Read a Hugging Face model folder (config.json + model.safetensors, shards, or "
                    "pytorch_model.bin) in the Llama layout, e.g. one written by `minimind-tui export`, and "
                    "write a MiniMind state dict that `chat` and `train --init` load.")
    p.add_argument("hf_dir", help="the model folder")
    p.add_argument("--out", help="the .pth to write (default: out/<folder name>.pth)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minimind_tui.interop.hf_import import import_hf
    from model.config import LMConfig

    hf_dir = Path(args.hf_dir)
    out = Path(args.out) if args.out else Path(args.root) / "out" / f"{hf_dir.resolve().name}.pth"
    result = import_hf(hf_dir, out, force=args.force)
    c = result.config
    print(f"imported {hf_dir} ({result.layout} layout) to {result.path}: dim {c.dim}, {c.n_layers} layers, "
          f"{c.n_heads} heads / {c.n_kv_heads} kv heads, vocab {c.vocab_size}")
    # Shapes give dim, layers and kv width back; these settings are not in a .pth and must be passed again.
    flags = [f"--{name} {getattr(c, name):g}" for name in ("n_heads", "rope_theta", "norm_eps")
             if getattr(c, name) != getattr(LMConfig, name)]
    if flags:
        print(f"note: load it with {' '.join(flags)} (not the defaults)")
    return 0
