"""`minimind-tui export CKPT --out DIR`: a checkpoint as a Hugging Face directory (Llama, Qwen3, Qwen3-MoE or
Qwen2-MoE, whichever computes its generation's network).
`minimind-tui export CKPT --merge-lora ADAPTER --out FILE.pth`: base + LoRA adapter merged into full weights."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a checkpoint as a Hugging Face directory (config.json, model.safetensors, …)",
        description="Write a MiniMind checkpoint as a Hugging Face directory that transformers' "
                    "AutoModelForCausalLM loads without trust_remote_code, with the same logits: v1 and MiniMind2 "
                    "dense as Llama, minimind-3 as Qwen3, minimind-3's MoE as Qwen3-MoE, MiniMind2's MoE as "
                    "Qwen2-MoE (v1's MoE is refused). The generation is told by the weights' key names; "
                    "dimensions, layers and vocabulary by their shapes; head counts default to the generation's "
                    "(and to what the trainer recorded) and can be overridden. The tokenizer folder, with the "
                    "generation's own chat template, goes along. With --merge-lora ADAPTER, instead: the "
                    "checkpoint (any generation) with the LoRA adapter folded in (minimind-3's merge_lora), "
                    "written as that generation's own .pth to --out FILE.")
    p.add_argument("checkpoint", help="a .pth state dict (MiniMind's out/*.pth or a run's checkpoints/*/model.pth), "
                                      "a checkpoint folder, or a run folder (its newest complete checkpoint), as "
                                      "chat and train --init take")
    p.add_argument("--out", required=True, help="directory to write (created if missing); with --merge-lora, the "
                                                "merged weights file (.pth)")
    p.add_argument("--merge-lora", "--merge_lora", dest="merge_lora", metavar="ADAPTER",
                   help="merge this LoRA adapter (a file, or a NAME beside the checkpoint as chat's --lora_weight "
                        "finds it) into the checkpoint and write full weights in its generation's format")
    p.add_argument("--tokenizer", help="tokenizer directory (tokenizer.json + tokenizer_config.json); default: the one "
                                       "recorded with the checkpoint, else ./model/minimind_tokenizer "
                                       "(minimind-3: ./model/minimind-3_tokenizer)")
    p.add_argument("--n_heads", "--num_attention_heads", dest="n_heads", type=int,
                   help="query heads, when the model was trained with a non-default count (8)")
    p.add_argument("--n_kv_heads", "--num_key_value_heads", dest="n_kv_heads", type=int,
                   help="key/value heads (default: inferred from the shapes)")
    p.add_argument("--rope_theta", type=float, help="RoPE base, when not MiniMind's 1e6")
    p.add_argument("--norm_eps", "--rms_norm_eps", dest="norm_eps", type=float,
                   help="RMSNorm epsilon, when not the generation's (1e-5; minimind-3: 1e-6)")
    p.add_argument("--num_experts_per_tok", type=int,
                   help="MoE: experts per token, when not the generation's (2; minimind-3: 1) nor recorded")
    p.add_argument("--max_seq_len", "--max_position_embeddings", dest="max_seq_len", type=int,
                   help="max_position_embeddings to declare (default: the max_seq_len the checkpoint was trained "
                        "with, when recorded; else 8192, or MiniMind2's and minimind-3's 32768)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="weights' dtype in the export (auto: as stored in the checkpoint)")
    p.add_argument("--force", action="store_true", help="overwrite an existing export in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.merge_lora:
        return run_merge(args)
    from minimind_tui.interop.hf_export import export_hf
    from model.config import GENERATIONS

    result = export_hf(args.checkpoint, args.out, args.tokenizer, n_heads=args.n_heads,
                       n_kv_heads=args.n_kv_heads, rope_theta=args.rope_theta, max_seq_len=args.max_seq_len,
                       norm_eps=args.norm_eps, num_experts_per_tok=args.num_experts_per_tok, dtype=args.dtype,
                       force=args.force)
    c = result.config
    moe = f", {c.n_routed_experts} experts top-{c.num_experts_per_tok}" if c.use_moe else ""
    print(f"exported {GENERATIONS[c.generation]} ({result.n_params / 1e6:.1f}M parameters, "
          f"{str(result.dtype).removeprefix('torch.')}) as {result.architecture} to {result.out_dir}: dim {c.dim}, "
          f"{c.n_layers} layers, {c.n_heads} heads / {c.n_kv_heads} kv heads, head_dim {c.head_dim}{moe}, "
          f"vocab {c.vocab_size}, max_position_embeddings {c.max_seq_len}; tokenizer from {result.tokenizer_dir}")
    print(f"load it with: AutoModelForCausalLM.from_pretrained({str(result.out_dir)!r})")
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
