"""The token view: the template-rendered sample as tokens, loss-counted ones highlighted, the truncation
point at max_seq_len marked, and the counts."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from dataset.preview import TokenView

MAX_PIECES = 8192  # tokens drawn; the counts always cover the whole sample

# Alternating shades show where one token ends and the next begins.
TRAINED = ("black on #5fd787", "black on #afffaf")
UNTRAINED = ("#c0c0c0 on #303030", "#e0e0e0 on #444444")
CUT = "#ff8787 strike"
SPECIAL = "bold magenta"


def counts_text(tv: TokenView) -> Text:
    t = Text()
    t.append(f"tokens {tv.n_tokens:,}", "bold")
    t.append(f"  kept {tv.n_kept:,}  ")
    t.append(f"truncated {tv.n_truncated:,}", "bold red" if tv.n_truncated else "")
    t.append("  trained ")
    t.append(f"{tv.n_trained:,}", "bold green" if tv.n_trained else "bold red")
    if tv.n_pad_trained:
        t.append(f" (of which {tv.n_pad_trained:,} padding positions)", "yellow")
    if tv.n_trained_lost:
        t.append(f"  trained tokens lost to truncation {tv.n_trained_lost:,}", "red")
    t.append(f"   max_seq_len {tv.max_seq_len}", "dim")
    return t


def tokens_text(tv: TokenView, show_ids: bool = False) -> Text:
    t = Text()
    cut_marked = False
    for k, p in enumerate(tv.pieces[:MAX_PIECES]):
        if p.cut and not cut_marked:
            t.append(f"\n✂ truncated at max_seq_len {tv.max_seq_len}: the rest is never seen ✂\n", "bold red")
            cut_marked = True
        text = "<pad>" if p.pad else p.text
        text = text.replace("\n", "↵\n")
        if show_ids:
            text += f"⟨{p.id}⟩"
        if p.cut:
            style = CUT + (" underline" if p.would_train else "")
        elif p.trained:
            style = TRAINED[k % 2]
        else:
            style = UNTRAINED[k % 2]
        if p.special and not p.cut:
            style += f" {SPECIAL}"
        t.append(text, style)
    if len(tv.pieces) > MAX_PIECES:
        t.append(f"\n… {len(tv.pieces) - MAX_PIECES:,} more tokens not drawn", "dim")
    return t


LEGEND = Text.assemble(("trained", TRAINED[0]), " ", ("not trained", UNTRAINED[0]), " ",
                       ("<s> special", SPECIAL), " ", ("cut by truncation", CUT), " ",
                       ("(underlined: a reply token lost)", "dim"), "   d: show ids")


class TokenPane(VerticalScroll):
    DEFAULT_CSS = """
    TokenPane { height: 1fr; padding: 0 1; }
    TokenPane > Static { height: auto; width: 1fr; }
    TokenPane > #ds-token-counts { margin-bottom: 1; }
    TokenPane > #ds-token-text { margin-top: 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.view: TokenView | None = None
        self.show_ids = False

    def compose(self) -> ComposeResult:
        yield Static("No sample yet.", id="ds-token-counts")
        yield Static(LEGEND, id="ds-token-legend")
        yield Static("", id="ds-token-text")

    def show(self, tv: TokenView | None, note: str | None = None) -> None:
        self.view = tv
        counts = self.query_one("#ds-token-counts", Static)
        body = self.query_one("#ds-token-text", Static)
        if tv is None:
            counts.update(Text(note or "No sample yet."))
            body.update("")
            return
        counts.update(counts_text(tv))
        body.update(tokens_text(tv, self.show_ids))

    def toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        if self.view is not None:
            self.query_one("#ds-token-text", Static).update(tokens_text(self.view, self.show_ids))
