"""One JSONL sample shown as chat bubbles (role by role; tool definitions, tool calls, tool responses and reasoning
in bubbles of their own) or as its raw JSON, bad lines with their reason."""
from __future__ import annotations

import orjson
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from dataset.preview import Sample

MAX_CHARS = 20_000  # per message: a 1 MB pretraining line must not stall the screen


def _clip(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[:MAX_CHARS] + f"\n… ({len(text) - MAX_CHARS:,} more characters)"


class Bubble(Static):
    """One message. Static with a Text body, so brackets in data are never read as markup."""

    DEFAULT_CSS = """
    Bubble { width: 1fr; height: auto; padding: 0 1; margin: 0 0 1 0; border: round $secondary; }
    Bubble.role-user { margin-left: 8; border: round $accent; }
    Bubble.role-assistant { margin-right: 8; border: round $success; }
    Bubble.role-system { border: round $warning; color: $text-muted; }
    Bubble.role-text { border: round $primary; }
    Bubble.role-tools { border: round $warning; color: $text-muted; }
    Bubble.role-reasoning { margin-right: 8; border: round $success-darken-2; color: $text-muted; text-style: italic; }
    Bubble.role-tool_call { margin-right: 8; border: round $success; color: $text-accent; }
    Bubble.role-tool { margin-left: 8; border: round $secondary; }
    Bubble.error { border: heavy $error; }
    """

    def __init__(self, role: str, content: str, classes: str = "", title: str | None = None):
        super().__init__(Text(_clip(content)), classes=f"role-{role} {classes}".strip())
        self.role = role
        self.border_title = title or role


class SampleView(VerticalScroll):
    """Chat bubbles or raw JSON of the current sample; `show(sample, raw)` replaces the content."""

    DEFAULT_CSS = """
    SampleView { height: 1fr; padding: 0 1; }
    SampleView > .raw { width: 1fr; height: auto; }
    SampleView > .note { color: $text-muted; height: auto; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sample: Sample | None = None
        self.raw_mode = False

    def compose(self) -> ComposeResult:
        yield Static("Open a .jsonl file: type its path above and press Enter.", classes="note")

    def show(self, sample: Sample | None, raw: bool | None = None, note: str | None = None) -> None:
        if raw is not None:
            self.raw_mode = raw
        self.sample = sample
        self.remove_children()
        self.mount_all(list(self._widgets(sample, note)))
        self.scroll_home(animate=False)

    def _widgets(self, sample: Sample | None, note: str | None):
        if note:
            yield Static(Text(note), classes="note")
        if sample is None:
            return
        if not sample.ok:
            yield Bubble("error", f"line {sample.line_number}: {sample.error}", classes="error")
            yield Static(Text(_clip(sample.raw)), classes="raw")
            return
        if self.raw_mode:
            pretty = orjson.dumps(sample.obj, option=orjson.OPT_INDENT_2).decode()
            yield Static(Text(_clip(pretty)), classes="raw")
            return
        for block in sample.blocks:
            yield Bubble(block.role, block.text, title=block.title)
