"""`minimind-tui train pretrain|sft [MiniMind flags]`: run the trainer in this process.

Multi-GPU: `torchrun --nproc_per_node N -m minimind_tui train sft ...` (DDP; NCCL on CUDA, Gloo on CPU).
Multi-node: run on every node `torchrun --nnodes M --node_rank I --nproc_per_node N
--master_addr HOST0 --master_port 29500 -m minimind_tui train ...`; only global rank 0 writes the run
directory, so give every node the same --run_dir on shared storage or read it on node 0. The master port
must not be reachable from outside the cluster: torchrun's store is unauthenticated. On one machine,
`python -m minimind_tui.runs.torchrun_loopback --nproc_per_node N ...` keeps it on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from minimind_tui.train.args import MODES, add_arguments, given

EPILOG = """examples:
  minimind-tui train pretrain --preset demo --data_path dataset/demo_pretrain.jsonl --epochs 1
  minimind-tui train sft --batch_size 64 --dim 512 --n_layers 8 --max_seq_len 512 --out_dir out \\
      --data_path ./dataset/sft_mini_512.jsonl
  minimind-tui train sft --resume runs/20250101-120000-sft
  minimind-tui train lora --data_path ./dataset/lora_identity.jsonl --lora_name lora_identity
  minimind-tui train dpo --data_path ./dataset/dpo.jsonl --learning_rate 1e-8
  minimind-tui train distill --teacher out/full_sft_768.pth --alpha 0.5 --temperature 1.5
  minimind-tui train sft --batch_size 64 --device cuda --dry_run   # the plan and memory estimate only
  torchrun --nproc_per_node 2 -m minimind_tui train pretrain ...

exit status: 0 finished or stopped (SIGINT/SIGTERM/SIGHUP save a checkpoint first), 1 crashed,
2 bad input (data, flags, checkpoint), 3 out of memory."""


MODE_HELP = {
    "pretrain": 'pretraining on {"text": ...} lines',
    "sft": 'supervised fine-tuning on {"conversations": [...]} lines',
    "lora": "a LoRA adapter on a chat model (SFT-format data; only the adapter trains)",
    "dpo": 'preference alignment on {"chosen": [...], "rejected": [...]} pairs against the starting model',
    "distill": "knowledge distillation: the model learns a teacher's softened logits and the data",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="pretrain, fine-tune, LoRA, DPO or distil a model (MiniMind's flags work)",
                              description="Train a MiniMind model; writes runs/<run-id>/ and MiniMind-style "
                                          "weights in --out_dir.")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode in MODES:
        help_text = MODE_HELP[mode]
        sub = modes.add_parser(mode, help=help_text, epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sub)
        sub.add_argument("--json", action="store_true", help="with --dry_run: the plan as one JSON object")
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return dry_run(args.mode, given(args), as_json=args.json)
    from minimind_tui.train.loop import train  # torch is imported only now, so --help stays instant
    return train(args.mode, given(args), root=getattr(args, "root", "."))


# ----- --dry_run: the plan, without training, on any machine -----
def dry_run(mode: str, explicit: dict, as_json: bool = False) -> int:
    """Print what `train` would do with these flags on the device named (a GPU run can be planned on a laptop):
    parameters, passes per step, tokens per pass and the memory estimate of one process."""
    from minimind_tui.train.memory_plan import plan_for_settings
    from model.config import GENERATIONS

    settings = _settings(mode, explicit)
    settings["device"] = explicit.get("device") or _default_device()
    vocab, tokenizer = _vocabulary(settings)
    world = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: each process plans its own share
    plan = plan_for_settings(settings, vocab, world, gpu_total_gb=_gpu_total_gib(settings["device"]))
    accum = settings["accumulation_steps"]
    if as_json:
        print(json.dumps({"mode": mode, "generation": settings["generation"], **plan.to_dict(),
                          "memory_gb": round(plan.total_gb, 3), "vocab": vocab,
                          "tokenizer": str(tokenizer), "accumulation_steps": accum,
                          "passes_per_step": plan.passes_per_micro_batch * accum, "dim": settings["dim"],
                          "n_layers": settings["n_layers"], "use_moe": bool(settings["use_moe"])}))
        return 0
    gpu = plan.device == "cuda"
    budget = (f"--chunk_tokens {plan.chunk_tokens}" if plan.chunk_tokens else
              "one sample per pass" if plan.chunk_tokens == 0 else
              "one packed row, no padding" if not gpu and not settings["use_moe"] else "the whole batch at once")
    lines = [
        f"dry run: {mode} of a {GENERATIONS[settings['generation']]} model on {settings['device']} ({plan.dtype}), "
        f"{world} process{'es' if world > 1 else ''}; nothing is trained",
        f"  model    {plan.params / 1e6:.2f}M parameters: dim {settings['dim']}, {settings['n_layers']} layers, "
        f"{settings['n_heads']} heads ({settings['n_kv_heads']} KV){', MoE' if settings['use_moe'] else ''}, "
        f"vocab {vocab} ({tokenizer})",
        f"  batch    {plan.batch_size} samples x {plan.max_seq_len} tokens per micro-batch, {accum} micro-batch"
        f"{'es' if accum > 1 else ''} per optimizer step",
        f"  passes   {plan.passes_per_micro_batch} per micro-batch ({plan.passes_per_micro_batch * accum} per step) "
        f"when every sample is {plan.max_seq_len} tokens; at most {plan.tokens_per_pass} tokens per pass ({budget})",
        f"  memory   ≈{plan.total_gb:.1f} GB {'per GPU' if gpu else 'RAM'} (estimate): weights+grads "
        f"{plan.weights_gb:.2f}, AdamW {plan.optimizer_gb:.2f}"
        + (f", {'reference model' if mode == 'dpo' else 'teacher'} {plan.frozen_gb:.2f}" if plan.frozen_gb else "")
        + (f", DDP buckets {plan.ddp_gb:.2f}" if plan.ddp_gb else "")
        + (f", autocast copies {plan.casts_gb:.2f}" if plan.casts_gb else "")
        + f", activations {plan.activations_gb:.2f}, loss {plan.loss_gb:.2f}, "
        + (f"allocator slack + CUDA context {plan.overhead_gb:.2f}" if gpu else f"runtime {plan.overhead_gb:.2f}"),
    ]
    print("\n".join(lines))
    return 0


def _settings(mode: str, explicit: dict) -> dict:
    """The run's settings as the trainer resolves them (a resumed run's own settings under the flags)."""
    from minimind_tui.runs import layout
    from minimind_tui.train.args import resolve
    from minimind_tui.train.run_dir import saved_settings

    if not explicit.get("resume"):
        from minimind_tui.train.model_setup import choose_generation

        return resolve(mode, {**explicit, "generation": choose_generation(explicit, mode, log=lambda _: None)})
    run_dir = Path(explicit["resume"])
    if (run_dir / layout.MODEL_FILE).is_file():  # a checkpoint folder: runs/<id>/checkpoints/step_N
        run_dir = run_dir.parent.parent
    return resolve(mode, {k: v for k, v in explicit.items() if k != "resume"}, base=saved_settings(run_dir, mode))


def _gpu_total_gib(device: str) -> float | None:
    """The named GPU's memory when this machine has it (it sets the default chunk budget); None otherwise."""
    if not device.startswith("cuda"):
        return None
    from minimind_tui.train.loop import gpu_total_gib
    return gpu_total_gib(device)


def _default_device() -> str:
    import torch  # only to see whether this machine has a GPU, as the trainer would
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _vocabulary(settings: dict) -> tuple[int, Path]:
    """The vocabulary size of the tokenizer the trainer will choose (model_setup.choose_tokenizer)."""
    from minimind_tui.tokenizer_choice import choose_tokenizer_dir, find_weights, recorded_meta
    from minimind_tui.train.args import default_init_path
    from model.tokenizer import Tokenizer

    weights = None
    if settings["init"] != "none":
        weights = find_weights(settings["init"] or default_init_path(settings))
        weights = weights if weights is not None and weights.is_file() else None
    folder, _ = choose_tokenizer_dir(Path("."), settings["tokenizer"], weights=weights,
                                     meta=recorded_meta(weights) if weights else {})
    return Tokenizer.from_dir(folder).vocab_size, folder
