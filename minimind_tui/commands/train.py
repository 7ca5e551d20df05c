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

from minimind_tui.train.args import MODES, add_arguments, given

EPILOG = """examples:
  minimind-tui train pretrain --preset demo --data_path dataset/demo_pretrain.jsonl --epochs 1
  minimind-tui train sft --batch_size 64 --dim 512 --n_layers 8 --max_seq_len 512 --out_dir out \\
      --data_path ./dataset/sft_mini_512.jsonl
  minimind-tui train sft --resume runs/20250101-120000-sft
  torchrun --nproc_per_node 2 -m minimind_tui train pretrain ...

exit status: 0 finished or stopped (SIGINT/SIGTERM save a checkpoint first), 1 crashed,
2 bad input (data, flags, checkpoint), 3 out of memory."""


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="pretrain or fine-tune a model (MiniMind's flags work)",
                              description="Train a MiniMind model; writes runs/<run-id>/ and MiniMind-style "
                                          "weights in --out_dir.")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode in MODES:
        help_text = "pretraining on {\"text\": ...} lines" if mode == "pretrain" else \
            "supervised fine-tuning on {\"conversations\": [...]} lines"
        sub = modes.add_parser(mode, help=help_text, epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sub)
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minimind_tui.train.loop import train  # torch is imported only now, so --help stays instant
    return train(args.mode, given(args), root=getattr(args, "root", "."))
