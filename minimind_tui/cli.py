"""`minimind-tui` entry point. With no subcommand it opens the dashboard.

Each subcommand lives in its own module under `commands/` exposing `register(subparsers)`; heavy
imports (torch, textual) happen inside the handlers so `--help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules under minimind_tui.commands, in the order `--help` lists them.
COMMANDS = ["train", "tokenizer", "data", "demo", "chat", "runs", "export", "import_hf", "download", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minimind-tui",
        description="Train, watch and chat with MiniMind LLMs. Without a subcommand, opens the dashboard.",
    )
    parser.add_argument("--root", default=".", help="project folder holding runs/, out/ and dataset/ (default: .)")
    parser.add_argument("--demo", action="store_true", help="open the dashboard with the bundled demo data selected")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"minimind_tui.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"minimind_tui.commands.{name}":
                raise
            continue  # a command still being built
        module.register(sub)
    return parser


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that was given: `train pretrain`'s for `train pretrain --bogus`."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, sub.dest, None) if sub is not None else None
        if sub is None or name not in sub.choices:
            return parser
        parser = sub.choices[name]


def _quiet_broken_pipe() -> int:
    """`minimind-tui runs list | head`: the reader left. Say nothing (no traceback, nor Python's complaint
    when it flushes stdout at exit) and end as a program killed by SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the usage of the command they were typing, not the top level's
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command is None:
            from minimind_tui.app.main import run_app
            return run_app(root=args.root, demo=args.demo) or 0
        return args.func(args) or 0
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except Exception as e:
        if not getattr(e, "user_facing", False):
            raise
        print(f"minimind-tui: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minimind-tui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
