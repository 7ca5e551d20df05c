"""`minimind-tui import HF_DIR`: a Hugging Face model folder (Llama, Qwen3, Qwen3-MoE, Qwen2-MoE, or MiniMind's
own) as a native .pth checkpoint in its generation's own format."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="turn a Hugging Face folder (Llama, Qwen3, Qwen3-MoE, Qwen2-MoE) into a native .pth checkpoint",
        description="Read a Hugging Face model folder (config.json + model.safetensors, shards, or "
                    "pytorch_model.bin), e.g. one written by `minimind-tui export` and perhaps trained further in "
                    "transformers, and write the MiniMind state dict that `chat`, `train --init` and the "
                    "generation's own scripts load: Qwen3 and Qwen3-MoE as minimind-3, Qwen2-MoE as MiniMind2's "
                    "MoE (fp16, their key names), Llama as v1 unless the export recorded MiniMind2 or "
                    "--generation gen2 says so. What MiniMind cannot compute is refused with the reason.")
    p.add_argument("hf_dir", help="the model folder")
    p.add_argument("--out", help="the .pth to write (default: out/<folder name>.pth)")
    p.add_argument("--generation", choices=["v1", "gen2", "gen3"],
                   help="for a Llama folder: write v1 (interleaved RoPE rows, fp32 as stored) or gen2 (MiniMind2) "
                        "weights; default: what the export recorded, else v1")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minimind_tui.interop.hf_import import import_hf, settings_to_pass
    from model.config import GENERATIONS

    hf_dir = Path(args.hf_dir)
    out = Path(args.out) if args.out else Path(args.root) / "out" / f"{hf_dir.resolve().name}.pth"
    result = import_hf(hf_dir, out, generation=args.generation, force=args.force)
    c = result.config
    moe = f", {c.n_routed_experts} experts top-{c.num_experts_per_tok}" if c.use_moe else ""
    print(f"imported {hf_dir} ({result.layout} layout) to {result.path} as {GENERATIONS[c.generation]}: dim {c.dim}, "
          f"{c.n_layers} layers, {c.n_heads} heads / {c.n_kv_heads} kv heads{moe}, vocab {c.vocab_size}")
    # Shapes give dim, layers and kv width back; these settings are not in a .pth and must be passed again.
    flags = settings_to_pass(c)
    if flags:
        print(f"note: load it with {' '.join(flags)} (not the defaults)")
    return 0
