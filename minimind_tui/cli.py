"""`minimind-tui` entry point. With no subcommand it opens the dashboard.

Each subcommand lives in its own module under `commands/` exposing `register(subparsers)`; heavy
imports (torch, textual) happen inside the handlers so `--help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from minimind_tui.app.main import run_app
            return run_app(root=args.root, demo=args.demo) or 0
        return args.func(args) or 0
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
