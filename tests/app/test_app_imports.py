"""The dashboard process imports no torch (startup must be instant; torch loads only with a model), and the
run-directory / GPU modules import no Textual (the trainer and scripts use them)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_running_dashboard_with_every_tab_mounted_has_not_imported_torch(tmp_path):
    out = run_python(f"""
        import asyncio, sys
        from minimind_tui.app.main import create_app
        from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor

        async def main():
            app = create_app({str(tmp_path)!r}, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(),
                             poll_interval=None, gpu_interval=None)
            async with app.run_test(size=(80, 24)) as pilot:
                for key in "2341":
                    await pilot.press(key)
                    await pilot.pause()
                print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        asyncio.run(main())
    """)
    assert out.splitlines()[-1] == "[]"


def test_cli_with_no_subcommand_path_imports_no_torch():
    out = run_python("""
        import sys
        import minimind_tui.cli, minimind_tui.app.main, minimind_tui.app.app
        minimind_tui.cli.build_parser()
        print("torch" in sys.modules, "tokenizers" in sys.modules)  # the presets come from model.config
    """)
    assert out == "False False"


def test_runs_and_gpu_modules_import_no_textual():
    out = run_python("""
        import sys
        import minimind_tui.runs.launcher, minimind_tui.runs.summary, minimind_tui.runs.control
        import minimind_tui.gpu, minimind_tui.gpu.fake, minimind_tui.commands.runs
        import minimind_tui.app.run_watch, minimind_tui.app.presets, minimind_tui.app.datasets
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "torch")))
    """)
    assert out == "[]"


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
    with model.checkpoint, not the trainer's checkpointing."""
    app = _imported_modules(REPO / "minimind_tui" / "app")
    assert {f: sorted(m for m in mods if m.startswith("minimind_tui.commands"))
            for f, mods in app.items() if any(m.startswith("minimind_tui.commands") for m in mods)} == {}
    chat = {**_imported_modules(REPO / "minimind_tui" / "chat"),
            **{f: m for f, m in app.items() if f.endswith("chat_tab.py")}}
    assert {f: sorted(m for m in mods if m.startswith("minimind_tui.train"))
            for f, mods in chat.items() if any(m.startswith("minimind_tui.train") for m in mods)} == {}
