"""`minimind-tui demo`: the whole chain on the bundled demo corpus, on a CPU in a few minutes.

demo data -> pretrain (random init) -> SFT from those weights -> greedy answers to held-out questions ->
LoRA (a new name) on the SFT weights -> the name on held-out phrasings -> DPO (concise answers) on the SFT
weights -> the share of held-out preference pairs it now prefers, before and after.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minimind_tui.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the demo chain: pretrain, SFT, LoRA, DPO, each checked on held-out "
                                    "questions")
    p.add_argument("--out_dir", default="out", help="where the demo weights go (default: out)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--eval-only", action="store_true", help="skip training; only ask the held-out questions")
    p.add_argument("--no-stages", action="store_true", help="stop after SFT (no LoRA and DPO stages)")
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
    if not args.no_stages:
        stages(args, out, dim)
    return 0


def stages(args, out: Path, dim: int) -> None:
    """LoRA and DPO on the SFT weights, each with its held-out figure."""
    from minimind_tui.demo import DPO_FLAGS, IDENTITY, LORA_FLAGS, dpo_pairs, ensure_stage_data
    from minimind_tui.runs.layout import weights_name

    lora, dpo = ensure_stage_data(".")
    sft = out / weights_name("sft", dim, False)
    adapter = out / "lora" / f"demo_identity_{dim}.pth"
    if not args.eval_only:
        train("lora", lora, args, [*LORA_FLAGS, "--init", str(sft)])
    named, asked = identity(sft, adapter, args.device)
    print(f"LoRA: held-out identity questions answered with the new name {IDENTITY}: {named}/{asked}")
    dpo_weights = out / weights_name("dpo", dim, False)
    if not args.eval_only:
        train("dpo", dpo, args, [*DPO_FLAGS, "--init", str(sft)])
    before, pairs = preferred(sft, dpo_pairs(held_out=True))
    after, _ = preferred(dpo_weights, dpo_pairs(held_out=True))
    print(f"DPO: held-out preference pairs where the chosen reply is more likely: {before}/{pairs} before, "
          f"{after}/{pairs} after")


def identity(weights: Path, adapter: Path, device: str | None) -> tuple[int, int]:
    """The held-out identity questions (greedy) with the adapter on the SFT weights; (named, asked)."""
    from minimind_tui.chat.loading import load_session
    from minimind_tui.chat.settings import CHAT, GenerationSettings
    from minimind_tui.demo import HELD_OUT_IDENTITY, IDENTITY
    from model.lora import load_lora

    if not adapter.is_file():
        raise UserError(f"{adapter}: no demo LoRA adapter yet; run `minimind-tui demo` without --eval-only")
    session = load_session(weights, device=device, mode=CHAT,
                           settings=GenerationSettings(temperature=0.0, max_new_tokens=24))
    load_lora(session.model, adapter)
    named = 0
    for question in HELD_OUT_IDENTITY:
        answer = session.answer(question, remember=False).strip()
        named += IDENTITY in answer
        print(f"{'✓' if IDENTITY in answer else '✗'} {question} -> {answer}")
    return named, len(HELD_OUT_IDENTITY)


def preferred(weights: Path, pairs: list[dict]) -> tuple[int, int]:
    """(pairs whose chosen reply has the higher log-probability under `weights`, pairs): summed over each
    reply's trained tokens, as minimind-3's DPO compares them."""
    import tempfile

    import torch

    from dataset.batching import Collator, PairCollator
    from dataset.datasets import DPODataset, DPOSides
    from dataset.token_cache import build
    from minimind_tui.chat.loading import load_weights
    from minimind_tui.demo import demo_tokenizer_dir, write_jsonl
    from model import Tokenizer

    if not weights.is_file():
        raise UserError(f"{weights}: no demo DPO weights yet; run `minimind-tui demo` without --eval-only")
    tokenizer = Tokenizer.from_dir(demo_tokenizer_dir())
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp) / "pairs.jsonl", pairs)
        sides = DPOSides(DPODataset(Path(tmp) / "pairs.jsonl", tokenizer, max_length=128))
        cache = build(sides, Path(tmp) / "cache", tokenizer.vocab_size, {}, workers=1)
        batch = PairCollator(Collator(cache, pad_id=tokenizer.pad_token_id))(range(len(pairs)))[0]
        model = load_weights(weights)
        with torch.no_grad():
            logp = model(batch.X).logits.float().log_softmax(-1).gather(-1, batch.Y.unsqueeze(-1)).squeeze(-1)
    total = (logp * batch.loss_mask).sum(dim=1)
    return int((total[:len(pairs)] > total[len(pairs):]).sum()), len(pairs)
