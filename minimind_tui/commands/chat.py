"""`minimind-tui chat`: MiniMind's eval_model.py, streaming in the terminal.

Automatic mode (--auto, or nothing on stdin) runs the fixed probe prompts; otherwise every stdin line is
a prompt (an interactive terminal gets a prompt marker). Ctrl+C stops the current answer; at the prompt it quits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="talk to a checkpoint (probe prompts, stdin or interactive)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("which model (MiniMind's eval_model.py flags)")
    g.add_argument("--model_mode", type=int, default=1, choices=(0, 1),
                   help="0: pretrained weights, plain continuation; 1: SFT weights, chat template (default 1)")
    g.add_argument("--dim", type=int, default=512, help="model width, to pick {out_dir}/..._{dim}.pth (default 512)")
    g.add_argument("--n_layers", type=int, default=8, help="accepted for eval_model.py compatibility; the "
                   "layer count is read from the weights")
    g.add_argument("--use_moe", type=int, default=0, choices=(0, 1), help="pick the _moe weights file")
    g.add_argument("--out_dir", default="out", help="folder holding the weights, relative to --root (default out)")
    g.add_argument("--ckpt", metavar="PATH", help="a weights file (.pth), a checkpoint folder, or a run folder "
                   "(its newest complete checkpoint); overrides --model_mode/--dim/--out_dir")
    g.add_argument("--lora_weight", "--lora_name", dest="lora_weight", metavar="NAME|PATH",
                   help="a LoRA adapter on top of the weights (MiniMind2/minimind-3 eval_llm's --lora_weight, v1 "
                   "eval_model's --lora_name): a file, or a NAME looked up beside the weights as that "
                   "generation's script does ({dir}/lora/NAME_{dim}.pth, {dir}/NAME_{dim}.pth); None = no adapter")
    g.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: the one recorded with the "
                   "checkpoint, else ./model/minimind_tokenizer, else the bundled demo tokenizer)")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    s = p.add_argument_group("generation")
    s.add_argument("--temperature", type=float, default=0.85, help="0 = greedy (default 0.85)")
    s.add_argument("--top_p", type=float, default=0.85, help="nucleus sampling mass (default 0.85)")
    s.add_argument("--top_k", type=int, default=0, help="sample among the k likeliest tokens; 0 = off")
    s.add_argument("--repetition_penalty", type=float, default=1.0, help="> 1 discourages repeats (default 1)")
    s.add_argument("--max_new_tokens", type=int, default=512, help="longest reply in tokens (default 512)")
    s.add_argument("--history_cnt", type=int, default=0, help="earlier messages sent again, as in MiniMind "
                   "(an even number: 2 = the last question and answer); 0 = single turn")
    s.add_argument("--system", default="", help="system prompt (default: the template's MiniMind prompt)")
    s.add_argument("--seed", type=int, help="make sampling reproducible")
    s.add_argument("--int8", action="store_true", help="CPU: decode with int8 weight copies (several times "
                   "faster per token on a busy CPU, numbers slightly approximate)")
    m = p.add_argument_group("mode")
    m.add_argument("--auto", action="store_true", help="run the fixed probe prompts even if stdin has input")
    m.add_argument("--demo_probes", action="store_true", help="add the demo corpus's held-out questions and "
                   "score them (for models trained with `minimind-tui demo`)")
    p.set_defaults(func=run)


def run(args) -> int:
    from minimind_tui.chat.loading import load_session, weights_for_mode
    from minimind_tui.chat.settings import GenerationSettings
    from minimind_tui.errors import UserError

    root = Path(getattr(args, "root", ".") or ".")
    try:
        settings = GenerationSettings(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                      max_new_tokens=args.max_new_tokens,
                                      repetition_penalty=args.repetition_penalty,
                                      history_turns=max(0, args.history_cnt) // 2, system_prompt=args.system,
                                      seed=args.seed, int8=args.int8).validate()
    except ValueError as e:
        raise UserError(f"chat: {e}") from None
    if args.ckpt:
        from minimind_tui.train.model_setup import init_weights_file

        weights = init_weights_file(args.ckpt)  # a .pth, a checkpoint folder or a run folder
        mode = None  # from what the trainer recorded, else from the file name
    else:
        out_dir = Path(args.out_dir) if Path(args.out_dir).is_absolute() else root / args.out_dir
        weights = weights_for_mode(out_dir, args.model_mode, args.dim, bool(args.use_moe))
        mode = "continue" if args.model_mode == 0 else "chat"
    lora = None if args.lora_weight in (None, "", "None") else args.lora_weight  # 'None': MiniMind's "no adapter"
    session = load_session(weights, root=root, tokenizer_dir=args.tokenizer, device=args.device, mode=mode,
                           settings=settings, lora=lora)
    print(f"{session.describe()}; tokenizer {session.tokenizer_note}", file=sys.stderr)

    if args.auto or sys.stdin is None:
        return run_probes(session, args.demo_probes)
    if sys.stdin.isatty():
        return interactive(session)
    prompts = [line.strip() for line in sys.stdin if line.strip()]
    if not prompts:
        return run_probes(session, args.demo_probes)
    for prompt in prompts:
        ask(session, prompt)
    return 0


def ask(session, prompt: str, remember: bool = True, echo: bool = True) -> str:
    """Print the prompt and stream the answer; Ctrl+C stops this answer only."""
    import threading

    if echo:
        print(f"👶: {prompt}", flush=True)
    print("🤖️: ", end="", flush=True)
    if session.mode == "continue":
        print(prompt, end="", flush=True)  # a continuation reads on from the prompt
    stop = threading.Event()
    answer = []
    try:
        for piece in session.reply(prompt, stop=stop, remember=remember):
            answer.append(piece)
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        stop.set()
        print(" [stopped]", end="")
    stats = session.last_stats
    print(f"\n   ({stats.summary()})\n" if stats else "\n", flush=True)
    return "".join(answer)


def run_probes(session, demo: bool) -> int:
    from minimind_tui.chat.probes import probes

    scored = []
    for probe in probes(session.mode, demo=demo):
        answer = ask(session, probe.prompt, remember=False)
        if probe.expected is not None:
            scored.append(bool(probe.check(answer)))
    if scored:
        print(f"held-out questions answered correctly: {sum(scored)}/{len(scored)}")
    return 0


def interactive(session) -> int:
    print("Type a message (empty line or Ctrl+D quits; Ctrl+C stops an answer).", file=sys.stderr)
    while True:
        try:
            prompt = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not prompt:
            return 0
        ask(session, prompt, echo=False)
