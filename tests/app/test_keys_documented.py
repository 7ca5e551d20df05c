"""Every key the app binds is on the help screen and in docs/keys.md, and neither documents a key nothing binds.

The bindings are read from the classes themselves (every BINDINGS under minimind_tui.app), so a new widget's
keys are checked without this test knowing about it."""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from textual.binding import Binding

import minimind_tui.app
from minimind_tui.app.screens.help import HELP

REPO = Path(__file__).resolve().parents[2]
# Keys Textual's own widgets handle (focus moves, Input/DataTable keys, the command palette): documented,
# not bound by us.
TEXTUAL_KEYS = {"tab", "shift+tab", "enter", "up", "down", "ctrl+p"}
# Keys of modal dialogs: they show their own buttons, so the help screen need not list them.
DIALOGS = {"ConfirmScreen", "HelpScreen"}
NAMES = {"question_mark": "?", "↑": "up", "↓": "down", "esc": "escape"}


def _key(name: str) -> str:
    name = name.strip().lower()
    return NAMES.get(name, name)


def bound_keys() -> dict[str, set[str]]:
    """class name -> the keys its BINDINGS bind."""
    found: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(minimind_tui.app.__path__, "minimind_tui.app."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and "BINDINGS" in vars(obj):
                keys = set()
                for b in vars(obj)["BINDINGS"]:
                    spec = b.key if isinstance(b, Binding) else b[0]
                    keys |= {_key(k) for k in spec.split(",")}
                found[obj.__name__] = keys
    return found


def _expand(tokens: list[str]) -> set[str]:
    """alt+1..4 (help) and `alt+1` … `alt+4` (docs, joined to alt+1…alt+4) name four keys."""
    keys = set()
    for t in tokens:
        m = re.fullmatch(r"(.*?)(\d)(?:\.\.|…\1)(\d)", t)
        keys |= {f"{m[1]}{d}" for d in range(int(m[2]), int(m[3]) + 1)} if m else {_key(t)}
    return keys


def help_keys() -> set[str]:
    """Keys in the help text's key columns (rows are `  KEYS  what they do[  KEYS  what they do]`), plus
    keys named in a description as `(d: token ids)` or `(alt+1..4 inside a field)`."""
    keys = set()
    for line in HELP.splitlines():
        if not re.match(r"  \S", line):
            continue  # a heading, a continuation line or prose
        cells = re.split(r"\s{2,}", line.strip())
        for key_cell in cells[0::2]:
            keys |= _expand([t for t in key_cell.split() if t not in ("or", "/")])
        for text in cells[1::2]:
            keys |= _expand(re.findall(r"\(([\w+.]+)(?::| inside)", text))
    return keys


def doc_keys() -> set[str]:
    """Keys in docs/keys.md's tables: the backticked names in each row's first cell."""
    keys = set()
    for line in (REPO / "docs" / "keys.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            keys |= _expand(re.findall(r"`([^`]+)`", first_cell.replace("` … `", "…")))
    return keys


def test_the_parsers_read_what_they_should():
    assert {"1", "alt+4", "?", "f1", "d", "c", "shift+tab", "up", "ctrl+y"} <= help_keys()
    assert {"4", "alt+2", "?", "f1", "d", "q", "y", "up", "ctrl+y"} <= doc_keys()


def test_every_bound_key_is_documented_in_both_places():
    bound = bound_keys()
    assert {"MiniMindApp", "DatasetTab", "ChatTab", "ConfirmScreen", "HelpScreen"} <= set(bound)
    everywhere = set().union(*(keys for cls, keys in bound.items() if cls not in DIALOGS))
    assert sorted(everywhere - help_keys()) == []
    assert sorted(set().union(*bound.values()) - doc_keys()) == []


def test_nothing_is_documented_that_no_binding_or_widget_handles():
    bound = set().union(*bound_keys().values()) | TEXTUAL_KEYS
    assert sorted(help_keys() - bound) == []
    assert sorted(doc_keys() - bound) == []
