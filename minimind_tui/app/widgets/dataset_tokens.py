"""The token view: the template-rendered sample as tokens, loss-counted ones highlighted, the truncation
point at max_seq_len marked, and the counts. A DPO pair shows its chosen side, then its rejected side."""
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


def counts_text(tv: TokenView, label: str = "") -> Text:
    t = Text()
    if label:
        t.append(f"{label}: ", "bold")
    t.append(f"tokens {tv.n_tokens:,}", "bold")
    t.append(f"  kept {tv.n_kept:,}  ")
    t.append(f"truncated {tv.n_truncated:,}", "bold red" if tv.n_truncated else "")
    t.append("  trained ")
    t.append(f"{tv.n_trained_tokens:,}", "bold green" if tv.n_trained_tokens else "bold red")
    if tv.n_pad_trained:  # the reference's mask reaches into padding: counted by the loss, but no token
        t.append(f" (and {tv.n_pad_trained:,} padding positions the loss counts)", "yellow")
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
        self.views: list[tuple[str, TokenView]] = []  # (which sequence: "" or a DPO side, its view)
        self.show_ids = False

    @property
    def view(self) -> TokenView | None:
        """The (first) sequence shown."""
        return self.views[0][1] if self.views else None

    def compose(self) -> ComposeResult:
        yield Static("No sample yet.", id="ds-token-counts")
        yield Static(LEGEND, id="ds-token-legend")
        yield Static("", id="ds-token-text")

    def show(self, views: list[tuple[str, TokenView]] | TokenView | None, note: str | None = None) -> None:
        """`views`: dataset.preview.token_views' list (or one view); None shows `note` instead."""
        self.views = [("", views)] if isinstance(views, TokenView) else list(views or [])
        counts = self.query_one("#ds-token-counts", Static)
        if not self.views:
            counts.update(Text(note or "No sample yet."))
            self.query_one("#ds-token-text", Static).update("")
            return
        counts.update(Text("\n").join(counts_text(tv, label) for label, tv in self.views))
        self._show_tokens()

    def toggle_ids(self) -> None:
        self.show_ids = not self.show_ids
        if self.views:
            self._show_tokens()

    def _show_tokens(self) -> None:
        parts = []
        for label, tv in self.views:
            head = Text(f"══ {label} ══\n", "bold") if label else Text()
            parts.append(head + tokens_text(tv, self.show_ids))
        self.query_one("#ds-token-text", Static).update(Text("\n\n").join(parts))
