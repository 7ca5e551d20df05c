"""`minimind-tui export CKPT --out DIR`: a checkpoint as a Hugging Face Llama-format directory.
`minimind-tui export CKPT --merge-lora ADAPTER --out FILE.pth`: base + LoRA adapter merged into full weights."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a checkpoint as a Hugging Face Llama directory (config.json, model.safetensors, …)",
        description="Write a dense MiniMind checkpoint as a Hugging Face Llama-format directory that "
                    "transformers' LlamaForCausalLM and llama.cpp's converter load. Dimensions, layers and "
                    "vocabulary are read from the tensor shapes; head counts default to MiniMind's (8 query, "
                    "and key/value heads inferred) and can be overridden. MoE checkpoints are refused. "
                    "With --merge-lora ADAPTER, instead: the checkpoint (any generation) with the LoRA adapter "
                    "folded in (minimind-3's merge_lora), written as that generation's own .pth to --out FILE.")
    p.add_argument("checkpoint", help="a .pth state dict (MiniMind's out/*.pth or a run's checkpoints/*/model.pth), "
                                      "a checkpoint folder, or a run folder (its newest complete checkpoint), as "
                                      "chat and train --init take")
    p.add_argument("--out", required=True, help="directory to write (created if missing); with --merge-lora, the "
                                                "merged weights file (.pth)")
    p.add_argument("--merge-lora", "--merge_lora", dest="merge_lora", metavar="ADAPTER",
                   help="merge this LoRA adapter (a file, or a NAME beside the checkpoint as chat's --lora_weight "
                        "finds it) into the checkpoint and write full weights in its generation's format")
    p.add_argument("--tokenizer", help="tokenizer directory (tokenizer.json + tokenizer_config.json); default: the one "
                                       "recorded with the checkpoint, else ./model/minimind_tokenizer")
    p.add_argument("--n_heads", type=int, help="query heads, when the model was trained with a non-default count (8)")
    p.add_argument("--n_kv_heads", type=int, help="key/value heads (default: inferred from the shapes)")
    p.add_argument("--rope_theta", type=float, help="RoPE base, when not MiniMind's 1e6")
    p.add_argument("--max_seq_len", type=int, help="max_position_embeddings to declare (default: the max_seq_len the "
                                                   "checkpoint was trained with, when recorded; else 8192)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="weights' dtype in the export (auto: as stored in the checkpoint)")
    p.add_argument("--force", action="store_true", help="overwrite an existing export in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.merge_lora:
        return run_merge(args)
    from minimind_tui.interop.hf_export import export_hf

    result = export_hf(args.checkpoint, args.out, args.tokenizer, n_heads=args.n_heads,
                       n_kv_heads=args.n_kv_heads, rope_theta=args.rope_theta, max_seq_len=args.max_seq_len,
                       dtype=args.dtype, force=args.force)
    c = result.config
    print(f"exported {result.n_params / 1e6:.1f}M parameters ({str(result.dtype).removeprefix('torch.')}) "
          f"to {result.out_dir}: dim {c.dim}, {c.n_layers} layers, {c.n_heads} heads / {c.n_kv_heads} kv heads, "
          f"vocab {c.vocab_size}, max_position_embeddings {c.max_seq_len}; tokenizer from {result.tokenizer_dir}")
    print(f"load it with: LlamaForCausalLM.from_pretrained({str(result.out_dir)!r})")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Base + adapter -> merged full weights, as that generation's trainer writes a weights file."""
    from pathlib import Path

    from minimind_tui.chat.loading import check_weights_file, load_weights
    from minimind_tui.errors import UserError
    from minimind_tui.interop.hf_export import weights_file
    from model import GENERATIONS, load_lora, merge_lora, save_minimind
    from model.generations import weights_dtype
    from model.lora import find_lora_weights

    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; with --merge-lora, name the weights file to write "
                        f"(e.g. {out / 'merged_512.pth'})")
    if out.exists() and not args.force:
        raise UserError(f"--out {out}: exists; pass --force to overwrite it")
    weights = weights_file(args.checkpoint)
    check_weights_file(weights)
    model = load_weights(weights)
    c = model.config
    adapter = find_lora_weights(args.merge_lora, weights.parent, model.generation, c.dim, c.use_moe)
    merge_lora(load_lora(model, adapter))
    save_minimind(model, out)
    dtype = str(weights_dtype(model.generation)).removeprefix("torch.")
    print(f"merged {adapter} into {weights}: wrote {out} ({GENERATIONS[model.generation]} weights, {dtype}, "
          f"{model.num_parameters() / 1e6:.1f}M parameters)")
    return 0
