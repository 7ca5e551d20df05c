"""`minimind-tui chat`: MiniMind's eval_llm.py (eval_model.py for v1), streaming in the terminal.

Any MiniMind generation: the weights tell v1, MiniMind2 or minimind-3, and the flags not given take that
generation's eval script defaults (MiniMind2: --hidden_size 512 --top_p 0.85; minimind-3: --hidden_size 768
--top_p 0.95; both --max_new_tokens 8192). The weights are {save_dir}/{weight}_{hidden_size}[_moe].pth, a
file or run folder named with --ckpt, or a Hugging Face folder named with --load_from. Weights whose name
contains "pretrain" continue the prompt (bos + text, no template), as upstream does.

Reasoning (`<think>...</think>`) is printed dimmed and apart from the answer; --open_thinking 1 asks a
minimind-3 model to think first (MiniMind2: enable_thinking). Tool calls are printed as name(arguments).

Automatic mode (--auto, or nothing on stdin) runs the fixed probe prompts; otherwise every stdin line is
a prompt (an interactive terminal gets a prompt marker). Ctrl+C stops the current answer; at the prompt it quits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minimind_tui.chat.reply import ANSWER, THINKING, TOOL_CALL

FAINT, NOT_FAINT = "\x1b[2m", "\x1b[22m"  # ANSI: dim on, normal intensity


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="talk to a checkpoint (probe prompts, stdin or interactive)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("which model (MiniMind's eval_llm.py flags; v1's eval_model.py names too)")
    g.add_argument("--load_from", metavar="model|DIR", help="`model` (the default): .pth weights from "
                   "--save_dir; a MiniMind2 / minimind-3 Hugging Face folder (config.json + weights): load it, "
                   "with its tokenizer; another folder: the tokenizer folder for the .pth weights")
    g.add_argument("--save_dir", "--out_dir", dest="save_dir", default="out",
                   help="folder holding the weights, relative to --root (default out)")
    g.add_argument("--weight", help="weights name: pretrain, full_sft, rlhf, reason, ... (default full_sft; a "
                   "name containing 'pretrain' continues text instead of chatting)")
    g.add_argument("--model_mode", type=int, choices=(0, 1), help="v1's eval_model.py: 0 = --weight pretrain, "
                   "1 = --weight full_sft")
    g.add_argument("--hidden_size", "--dim", dest="hidden_size", type=int, help="model width, to pick "
                   "{save_dir}/{weight}_{hidden_size}.pth (default: the generation's, 512 or minimind-3's 768)")
    g.add_argument("--num_hidden_layers", type=int, help="layer count; read from the weights, checked when given")
    g.add_argument("--n_layers", type=int, help="accepted for eval_model.py compatibility; the layer count is "
                   "read from the weights")
    g.add_argument("--use_moe", type=int, default=0, choices=(0, 1), help="pick the _moe weights file")
    g.add_argument("--inference_rope_scaling", action="store_true", help="YaRN RoPE scaling for contexts longer "
                   "than training's (MiniMind2 / minimind-3)")
    g.add_argument("--ckpt", metavar="PATH", help="a weights file (.pth), a checkpoint folder, or a run folder "
                   "(its newest complete checkpoint); overrides --weight/--hidden_size/--save_dir")
    g.add_argument("--lora_weight", "--lora_name", dest="lora_weight", metavar="NAME|PATH",
                   help="a LoRA adapter on top of the weights (MiniMind2/minimind-3 eval_llm's --lora_weight, v1 "
                   "eval_model's --lora_name): a file, or a NAME looked up beside the weights as that "
                   "generation's script does ({dir}/lora/NAME_{dim}.pth, {dir}/NAME_{dim}.pth); None = no adapter")
    g.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: the one recorded with the "
                   "checkpoint, else the project's: model/minimind_tokenizer, model/, model/minimind-3_tokenizer, "
                   "of the weights' generation; else the bundled demo tokenizer)")
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    s = p.add_argument_group("generation")
    s.add_argument("--temperature", type=float, default=0.85, help="0 = greedy (default 0.85)")
    s.add_argument("--top_p", type=float, help="nucleus sampling mass (default 0.85; minimind-3 0.95)")
    s.add_argument("--top_k", type=int, default=0, help="sample among the k likeliest tokens; 0 = off")
    s.add_argument("--repetition_penalty", type=float, default=1.0, help="> 1 discourages repeats (default 1)")
    s.add_argument("--max_new_tokens", type=int, help="longest reply in tokens (default 512; MiniMind2 and "
                   "minimind-3 8192, as their eval_llm.py)")
    s.add_argument("--open_thinking", type=int, choices=(0, 1), help="1: the model reasons first (minimind-3's "
                   "open_thinking, MiniMind2's enable_thinking); 0: no reasoning (default: as eval_llm.py: "
                   "minimind-3 0, MiniMind2 the template's default, thinking for --weight reason)")
    s.add_argument("--historys", "--history_cnt", dest="historys", type=int, default=0, help="earlier messages "
                   "sent again, as in MiniMind (an even number: 2 = the last question and answer); 0 = single turn")
    s.add_argument("--show_speed", type=int, default=1, choices=(0, 1), help="print tokens/s after each reply "
                   "(default 1)")
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
    from minimind_tui.chat.loading import load_session
    from minimind_tui.errors import UserError

    root = Path(getattr(args, "root", ".") or ".")
    try:
        settings(args, "v1").validate()  # a bad number fails before a model is loaded
    except ValueError as e:
        raise UserError(f"chat: {e}") from None
    weights, tokenizer_dir, mode = _which_model(args, root)
    config = {k: v for k, v in (("hidden_size", args.hidden_size if args.ckpt is None else None),
                                ("num_hidden_layers", args.num_hidden_layers),
                                ("inference_rope_scaling", args.inference_rope_scaling or None)) if v}
    lora = None if args.lora_weight in (None, "", "None") else args.lora_weight  # 'None': MiniMind's "no adapter"
    session = load_session(weights, root=root, tokenizer_dir=tokenizer_dir, device=args.device, mode=mode,
                           lora=lora, config=config)
    session.settings = settings(args, session.model.generation, args.weight or "").validate()
    if args.open_thinking is not None and session.tokenizer.thinking_switch is None:
        print(f"note: --open_thinking {args.open_thinking}: this tokenizer's chat template has no thinking "
              f"switch; ignored", file=sys.stderr)
    print(f"{session.describe()}; tokenizer {session.tokenizer_note}", file=sys.stderr)

    show_speed = bool(args.show_speed)
    if args.auto or sys.stdin is None:
        return run_probes(session, args.demo_probes, show_speed)
    if sys.stdin.isatty():
        return interactive(session, show_speed)
    prompts = [line.strip() for line in sys.stdin if line.strip()]
    if not prompts:
        return run_probes(session, args.demo_probes, show_speed)
    for prompt in prompts:
        ask(session, prompt, show_speed=show_speed)
    return 0


def settings(args, generation: str, weight: str = ""):
    """The generation settings from the flags; those not given take `generation`'s eval-script defaults."""
    from minimind_tui.chat.settings import EVAL_DEFAULTS, GenerationSettings, default_thinking

    defaults = EVAL_DEFAULTS[generation]
    thinking = bool(args.open_thinking) if args.open_thinking is not None else default_thinking(generation, weight)
    return GenerationSettings(
        temperature=args.temperature, top_p=defaults["top_p"] if args.top_p is None else args.top_p,
        top_k=args.top_k, repetition_penalty=args.repetition_penalty,
        max_new_tokens=defaults["max_new_tokens"] if args.max_new_tokens is None else args.max_new_tokens,
        history_turns=max(0, args.historys) // 2, system_prompt=args.system, seed=args.seed, int8=args.int8,
        thinking=thinking)


def _which_model(args, root: Path) -> tuple[Path, str | None, str | None]:
    """(weights file or Hugging Face folder, tokenizer folder or None for the usual choice, chat mode or None
    for what the weights say), from --ckpt, --load_from or eval_llm.py's file naming."""
    from dataset.tokenizer_dir import tokenizer_generation
    from minimind_tui.chat.loading import eval_weights, is_model_folder
    from minimind_tui.chat.settings import CHAT, CONTINUE
    from minimind_tui.errors import UserError

    if args.ckpt:
        from minimind_tui.tokenizer_choice import find_weights

        if is_model_folder(args.ckpt):
            return Path(args.ckpt), args.tokenizer, None  # a Hugging Face folder
        found = find_weights(args.ckpt)  # a .pth, a checkpoint folder or a run folder (its newest checkpoint)
        if found is None:
            raise UserError(f"{args.ckpt}: no model.pth and no complete checkpoint inside")
        return found, args.tokenizer, None  # the mode from what the trainer recorded, else from the file name
    load_from = None
    if args.load_from and args.load_from != "model":  # "model": .pth weights and the usual tokenizer choice
        load_from = Path(args.load_from)
        load_from = load_from if load_from.is_absolute() else root / load_from
        if is_model_folder(load_from):  # a Hugging Face folder: weights and tokenizer
            return load_from, args.tokenizer, None
    tokenizer_dir = args.tokenizer or load_from
    hint = tokenizer_generation(tokenizer_dir if tokenizer_dir else _default_tokenizer(root))
    weight = args.weight or ("pretrain" if args.model_mode == 0 else "full_sft")
    save_dir = Path(args.save_dir) if Path(args.save_dir).is_absolute() else root / args.save_dir
    weights = eval_weights(save_dir, weight, args.hidden_size, bool(args.use_moe), hint)
    return weights, tokenizer_dir, CONTINUE if "pretrain" in weight else CHAT


def _default_tokenizer(root: Path) -> Path:
    from dataset.tokenizer_dir import default_tokenizer_dir

    return default_tokenizer_dir(root)


def ask(session, prompt: str, remember: bool = True, echo: bool = True, show_speed: bool = True) -> str:
    """Print the prompt and stream the answer; Ctrl+C stops this answer only. Returns the answer (chat: without
    its reasoning and tool calls)."""
    import threading

    from minimind_tui.chat.settings import CONTINUE

    if echo:
        print(f"👶: {prompt}", flush=True)
    print("🤖️: ", end="", flush=True)
    plain = session.mode == CONTINUE
    if plain:
        print(prompt, end="", flush=True)  # a continuation reads on from the prompt
    printer = ReplyPrinter(sys.stdout)
    stop = threading.Event()
    answer = []
    try:
        for piece in session.reply(prompt, stop=stop, remember=remember):
            answer.append(piece)
            if plain:
                print(piece, end="", flush=True)
            else:
                printer.show(session.parsed.events())
        if not plain:
            printer.show(session.parsed.events())  # what was held back in case it was a tag
    except KeyboardInterrupt:
        stop.set()
        printer.finish()
        print(" [stopped]", end="")
    printer.finish()
    stats = session.last_stats
    print(f"\n   ({stats.summary()})\n" if stats and show_speed else "\n", flush=True)
    if plain or session.parsed is None:
        return "".join(answer)
    return session.parsed.parts().answer


class ReplyPrinter:
    """Prints a chat reply's parts as they stream (minimind_tui.chat.reply's events): the reasoning after 💭,
    dimmed when printing to a terminal, then a blank line and the answer; each tool call on a line of its own
    as 🔧 name(arguments)."""

    def __init__(self, out, faint: bool | None = None):
        self.out = out
        self.faint = out.isatty() if faint is None else faint
        self.last: str | None = None  # the kind of part printed last

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def show(self, events) -> None:
        for kind, value in events:
            if kind == THINKING:
                if self.last != THINKING:
                    self._write((FAINT if self.faint else "") + "💭 ")
                self._write(value)
            elif kind == TOOL_CALL:
                self._end_thinking()
                self._write(("\n" if self.last == ANSWER else "") + f"🔧 {value.describe()}\n")
            else:
                self._end_thinking()
                self._write(value)
            self.last = kind

    def _end_thinking(self) -> None:
        if self.last == THINKING:
            self._write((NOT_FAINT if self.faint else "") + "\n\n")
            self.last = None

    def finish(self) -> None:
        """After the last piece (or a stop): a reasoning cut off mid-way ends its dimming too."""
        if self.last == THINKING and self.faint:
            self._write(NOT_FAINT)
        self.last = None


def run_probes(session, demo: bool, show_speed: bool = True) -> int:
    from minimind_tui.chat.probes import probes

    scored = []
    for probe in probes(session.mode, demo=demo):
        answer = ask(session, probe.prompt, remember=False, show_speed=show_speed)
        if probe.expected is not None:
            scored.append(bool(probe.check(answer)))
    if scored:
        print(f"held-out questions answered correctly: {sum(scored)}/{len(scored)}")
    return 0


def interactive(session, show_speed: bool = True) -> int:
    print("Type a message (empty line or Ctrl+D quits; Ctrl+C stops an answer).", file=sys.stderr)
    while True:
        try:
            prompt = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not prompt:
            return 0
        ask(session, prompt, echo=False, show_speed=show_speed)
