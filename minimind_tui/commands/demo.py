"""`minimind-tui demo`: the whole chain on the bundled demo corpus, on a CPU in a few minutes.

demo data -> pretrain (random init) -> SFT from those weights -> greedy answers to held-out questions.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minimind_tui.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the demo chain: pretrain, SFT, then ask held-out questions")
    p.add_argument("--out_dir", default="out", help="where the demo weights go (default: out)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--eval-only", action="store_true", help="skip training; only ask the held-out questions")
    p.set_defaults(func=run)


def train(mode: str, data: Path, args, extra: list[str]) -> None:
    from minimind_tui.demo import demo_tokenizer_dir

    cmd = [sys.executable, "-m", "minimind_tui", "train", mode, "--data_path", str(data),
           "--out_dir", args.out_dir, "--tokenizer", str(demo_tokenizer_dir()), *extra]
    if args.device:
        cmd += ["--device", args.device]
    print("$ " + " ".join(cmd[2:]), flush=True)
    if subprocess.call(cmd) != 0:
        raise UserError(f"demo {mode} failed; see the run's train.log under runs/")


def evaluate(weights: Path, device: str | None) -> tuple[int, int]:
    """Greedy answers to the held-out questions (the chat tab's demo probes); returns (correct, asked)."""
    from minimind_tui.chat.loading import load_session
    from minimind_tui.chat.probes import probes
    from minimind_tui.chat.settings import CHAT, GenerationSettings
    from minimind_tui.demo import held_out_questions

    session = load_session(weights, device=device, mode=CHAT,
                           settings=GenerationSettings(temperature=0.0, max_new_tokens=32))
    asked = probes(CHAT, demo=True)[:len(held_out_questions())]
    correct = 0
    for probe in asked:
        answer = session.answer(probe.prompt, remember=False)
        ok = bool(probe.check(answer))
        correct += ok
        print(f"{'✓' if ok else '✗'} {probe.prompt} -> {answer.strip()}")
    return correct, len(asked)


def run(args) -> int:
    from minimind_tui.demo import PRETRAIN_FLAGS, SFT_FLAGS, ensure_demo_data
    from minimind_tui.runs.layout import weights_name
    from model.config import PRESETS

    pre, sft = ensure_demo_data(".")
    out = Path(args.out_dir)
    dim = PRESETS["demo"]["dim"]
    if not args.eval_only:
        train("pretrain", pre, args, PRETRAIN_FLAGS)
        train("sft", sft, args, [*SFT_FLAGS, "--init", str(out / weights_name("pretrain", dim, False))])
    weights = out / weights_name("sft", dim, False)
    if not weights.is_file():
        raise UserError(f"{weights}: no demo SFT weights yet; run `minimind-tui demo` without --eval-only")
    correct, asked = evaluate(weights, args.device)
    print(f"held-out questions answered correctly: {correct}/{asked}")
    return 0
