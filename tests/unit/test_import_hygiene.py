"""Every import rule of CONTRIBUTING.md, one case each, checked in a fresh interpreter (harlequin's way: import,
then look at sys.modules). Whole packages are walked, so a module added later is covered without a new test."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WALK = """
import importlib, pkgutil, sys
def walk(package):
    importlib.import_module(package)
    for info in pkgutil.walk_packages(sys.modules[package].__path__, package + "."):
        if not info.name.endswith("__main__"):  # running it would start the CLI
            importlib.import_module(info.name)
"""
# Modules of the app that hold its models and logic apart from Textual (toolong's way: the file model knows
# nothing of the UI), so they can be unit-tested and reused by scripts.
APP_MODELS = ["minimind_tui.app.run_watch", "minimind_tui.app.presets", "minimind_tui.app.datasets",
              "minimind_tui.app.dataset_browser", "minimind_tui.app.curves", "minimind_tui.app.compare",
              "minimind_tui.app.plotting"]

# rule id -> (code run in a fresh interpreter, top-level packages it must not have imported)
RULES = {
    # "model, dataset and minimind_tui.train never import textual" (the trainer runs on headless GPU boxes)
    "model-no-textual": ("walk('model')", {"textual"}),
    "dataset-no-textual": ("walk('dataset')", {"textual"}),
    "train-no-textual": ("walk('minimind_tui.train'); import minimind_tui.train.loop", {"textual"}),
    # "minimind_tui.app never imports torch at import time" (start-up must be instant), nor does the CLI's
    # way into it, which does not even load the tokenizer library (the presets come from model.config)
    "app-no-torch": ("walk('minimind_tui.app')", {"torch"}),
    "cli-start-light": ("import minimind_tui.cli, minimind_tui.app.main, minimind_tui.app.app; "
                        "minimind_tui.cli.build_parser()", {"torch", "tokenizers"}),
    # "The trainer and the dashboard talk only through the run directory": the run-directory contract and the
    # GPU monitor are shared by both, so they need neither side's heavy imports
    "runs-and-gpu-neither": ("walk('minimind_tui.runs'); walk('minimind_tui.gpu'); "
                             "import minimind_tui.commands.runs", {"textual", "torch"}),
    "app-models-neither": ("; ".join(f"import {m}" for m in APP_MODELS), {"textual", "torch"}),
    # The Dataset tab reads, checks, previews and counts in the dashboard process: all of it torch-free, also
    # when it runs (the statistics and the token view of a real file)
    "dataset-tab-code-no-torch": ("""
        from dataset.jsonl import JsonlFile
        from dataset.preview import load_tokenizer, sample_from_raw, token_view
        from dataset.stats import compute_stats
        import dataset.validate
        path = sys.argv[1]
        tok, jsonl = load_tokenizer(), JsonlFile(path)
        compute_stats(jsonl, 'sft', tok)
        token_view(sample_from_raw(jsonl.line(0), 0, 'sft'), tok, 64)
    """, {"torch", "textual"}),
    # One reply parser for the CLI and the Chat tab: neither side's heavy imports, so both (and scripts) use it
    "chat-reply-neither": ("import minimind_tui.chat.reply, minimind_tui.chat.settings", {"torch", "textual"}),
    # The dashboard's dataset picker downloads from a worker: the download code stays light
    "download-neither": ("import minimind_tui.interop.download, minimind_tui.interop.catalogue",
                         {"torch", "textual"}),
}


def imported(code: str, *args: str) -> set[str]:
    """Top-level packages in sys.modules after running `code` in a fresh interpreter."""
    program = WALK + textwrap.dedent(code) + "\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", program, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(out.stdout.split())


@pytest.mark.parametrize("rule", RULES)
def test_import_rule(rule, tmp_path):
    code, forbidden = RULES[rule]
    sample = tmp_path / "chat.jsonl"
    turns = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}]
    sample.write_text(json.dumps({"conversations": turns}, ensure_ascii=False) + "\n", encoding="utf-8")
    found = imported(code, str(sample))
    assert forbidden & found == set(), f"{rule}: imported {sorted(forbidden & found)}"


def test_the_rules_can_fail():
    """The check itself: a module that does import torch is caught."""
    assert "torch" in imported("walk('model')")


def test_a_running_dashboard_with_every_tab_shown_has_not_imported_torch(tmp_path):
    code = f"""
        import asyncio
        from minimind_tui.app.main import create_app
        from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor

        async def main():
            app = create_app({str(tmp_path)!r}, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(),
                             poll_interval=None, gpu_interval=None)
            async with app.run_test(size=(80, 24)) as pilot:
                for key in "2341":
                    await pilot.press(key)
                    await pilot.pause()
                assert len(app.query("#dataset-tab")) == len(app.query("#chat-tab")) == 1
        asyncio.run(main())
    """
    assert "torch" not in imported(code)


def _imported_modules(folder: Path) -> dict[str, set[str]]:
    """Every module each .py file under `folder` imports, at the top or inside a function."""
    import ast

    found = {}
    for path in folder.rglob("*.py"):
        package = list(path.relative_to(REPO).parent.parts)
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):  # `from ..x import y` resolved against the file's package
                base = package[:len(package) - node.level + 1] if node.level else []
                names.add(".".join(base + ([node.module] if node.module else [])))
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_app_uses_no_cli_command_module_and_chat_no_trainer_module():
    """The Dataset tab formats through dataset.report, not `data inspect`'s module; chat verifies checksums
    with model.checkpoint, not the trainer's checkpointing. (Read from the source: such an import may sit
    inside a function, where importing the module would not reach it.)"""
    app = _imported_modules(REPO / "minimind_tui" / "app")
    assert {f: sorted(m for m in mods if m.startswith("minimind_tui.commands"))
            for f, mods in app.items() if any(m.startswith("minimind_tui.commands") for m in mods)} == {}
    chat = {**_imported_modules(REPO / "minimind_tui" / "chat"),
            **{f: m for f, m in app.items() if f.endswith("chat_tab.py")}}
    assert {f: sorted(m for m in mods if m.startswith("minimind_tui.train"))
            for f, mods in chat.items() if any(m.startswith("minimind_tui.train") for m in mods)} == {}
