"""The Dataset tab: see exactly what the model will be trained on.

Opening a file reads its first lines directly and shows line 1 at once, while a thread worker builds (or
loads) the byte-offset index; after that any line is one `pread` away, so memory does not grow with the
file. Tokenizing, the token view and the statistics run in thread workers that post typed messages back; the
statistics worker is cancellable. What is open and what is current lives in a Textual-free `DatasetBrowser`
(../dataset_browser.py); this widget keeps the layout, the keys and the workers. Nothing here imports torch
(the tokenizer loads torch-free, in a worker).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, TabbedContent, TabPane
from textual.worker import get_current_worker

from dataset.jsonl import JsonlFile, check_data_file
from dataset.preview import default_tokenizer_dir, head_lines
from dataset.stats import DatasetStats

from ..dataset_browser import DatasetBrowser, StatsJob, TokensJob
from .dataset_samples import SampleView
from .dataset_stats import StatsPane
from .dataset_tokens import MAX_PIECES, TokenPane

KINDS = [("kind: auto", "auto"), ("pretrain", "pretrain"), ("sft", "sft"), ("dpo", "dpo")]


# ---- what the workers post back to the tab; those about one open carry its generation (`gen`) ----------------
@dataclass(eq=False)
class HeadRead(Message, bubble=False):
    """The first lines of the file, read directly (`whole`: they are the whole file)."""
    gen: int
    path: Path
    lines: list[bytes]
    whole: bool


@dataclass(eq=False)
class IndexProgress(Message, bubble=False):
    gen: int
    done: int   # bytes
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IndexProgress)


@dataclass(eq=False)
class Indexed(Message, bubble=False):
    gen: int
    jsonl: JsonlFile


@dataclass(eq=False)
class OpenFailed(Message, bubble=False):
    gen: int
    text: str  # DataError or OSError, as one line


@dataclass(eq=False)
class TokenizerLoaded(Message, bubble=False):
    tokenizer: object | None  # None on failure
    error: str | None
    wanted: Path | None       # the tokenizer folder asked for (None: the project's default)


@dataclass(eq=False)
class TokensReady(Message, bubble=False):
    key: tuple[int, int, int]  # TokensJob.key
    view: object | None        # dataset.preview.token_views' list; None on failure
    error: str | None


@dataclass(eq=False)
class StatsProgress(Message, bubble=False):
    gen: int
    done: int   # lines
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsProgress)


@dataclass(eq=False)
class StatsDone(Message, bubble=False):
    gen: int
    stats: DatasetStats | None  # None on failure
    error: str | None


@dataclass(eq=False)
class ThroughputFound(Message, bubble=False):
    value: float  # real tokens/s measured by a run
    run: str      # its id


class DatasetTab(Widget):
    """`DatasetTab(root)`; `open_file(path, kind=None)` opens a file (the Train tab's picker calls it).
    `browser` holds what is open (path, kind, index, sample, jsonl, tokenizer)."""

    DEFAULT_CSS = """
    DatasetTab { height: 1fr; }
    DatasetTab > #ds-bar { height: 1; margin: 1 1 0 1; }
    DatasetTab > #ds-bar > #ds-path { width: 1fr; }
    DatasetTab > #ds-bar > #ds-kind { width: 14; margin: 0 1; }
    DatasetTab > #ds-bar > Label { color: $text-muted; padding: 0 1 0 0; }
    DatasetTab > #ds-bar > #ds-maxlen { width: 7; }
    DatasetTab > #ds-status { height: 1; padding: 0 1; color: $text-muted; }
    DatasetTab > #ds-views { height: 1fr; }
    DatasetTab #ds-nav { height: 1; margin: 1 1; }
    DatasetTab #ds-nav > Button { min-width: 8; margin-right: 1; }
    DatasetTab #ds-nav > #ds-jump { width: 12; }
    DatasetTab #ds-nav > #ds-pos { padding: 0 1; }
    """

    BINDINGS = [
        Binding("n", "next", "Next"),
        Binding("p", "previous", "Prev"),
        Binding("g", "jump", "Go to"),
        Binding("x", "random", "Random"),
        Binding("j", "raw", "Raw"),
        Binding("t", "view('ds-tokens')", "Tokens"),
        Binding("i", "view('ds-stats')", "Stats"),
        Binding("d", "ids", "Token ids", show=False),
        Binding("c", "cancel_stats", "Cancel stats", show=False),
        Binding("o", "open_path", "Open another file", show=False),
    ]

    @dataclass(eq=False)
    class FileOpened(Message):
        """The first page of a file is showing (index may still be building)."""
        path: Path
        kind: str | None

    @dataclass(eq=False)
    class StatsComputed(Message):
        stats: DatasetStats

    def __init__(self, root: Path, tokenizer_dir: Path | None = None, max_seq_len: int = 512, **kwargs):
        kwargs.setdefault("id", "dataset-tab")
        super().__init__(**kwargs)
        self.browser = DatasetBrowser(root, tokenizer_dir, max_seq_len)
        self._pending_open: tuple | None = None
        self._ready = False           # set on mount; open_file before that is deferred
        self._stats_worker = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-bar"):
            yield Input(placeholder="path to a .jsonl file, Enter to open", id="ds-path", compact=True)
            yield Select(KINDS, value=self.browser.kind_choice, allow_blank=False, id="ds-kind", compact=True)
            yield Label("seq len")
            yield Input(str(self.browser.max_seq_len), placeholder="max_seq_len", id="ds-maxlen", type="integer",
                        compact=True, tooltip="max_seq_len: where training truncates each sample")
        yield Label("No file open.", id="ds-status")
        with TabbedContent(initial="ds-samples", id="ds-views"):
            with TabPane("Samples", id="ds-samples"):
                with Horizontal(id="ds-nav"):
                    yield Button("◀ Prev", id="ds-prev", compact=True)
                    yield Button("Next ▶", id="ds-next", compact=True)
                    yield Button("Random", id="ds-random", compact=True)
                    yield Button("Raw JSON", id="ds-raw", compact=True)
                    yield Input(placeholder="go to line", id="ds-jump", type="integer", compact=True)
                    yield Label("", id="ds-pos")
                yield SampleView(id="ds-sample")
            with TabPane("Tokens", id="ds-tokens"):
                yield TokenPane(id="ds-token-pane")
            with TabPane("Statistics", id="ds-stats"):
                yield StatsPane(id="ds-stats-pane")

    def on_mount(self) -> None:
        self._ready = True
        self._find_throughput()
        if self._pending_open is not None:
            self.open_file(*self._pending_open)

    def on_show(self) -> None:
        """Coming into view (key 3 or a click on the tab): put focus inside, so this tab's keys work."""
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors_with_self:
            if self.browser.path is None:
                self.query_one("#ds-path", Input).focus()
            else:
                self.action_view(self.query_one("#ds-views", TabbedContent).active)

    @work(thread=True, group="ds-throughput", exit_on_error=False)
    def _find_throughput(self) -> None:
        from .dataset_stats import measured_throughput
        found = measured_throughput(self.browser.root)
        if found is not None:
            self.post_message(ThroughputFound(*found))

    @on(ThroughputFound)
    def _throughput_found(self, m: ThroughputFound) -> None:
        field = self.query_one("#ds-throughput", Input)
        if not field.value:
            field.value = f"{m.value:.0f}"
            field.tooltip = f"measured by run {m.run} (real tokens/s); edit to estimate for another setup"

    # ---- opening -------------------------------------------------------------------------------------------
    def action_open_path(self) -> None:
        """Into the path field, its text selected: typing replaces it (letters there type, not run keys)."""
        field = self.query_one("#ds-path", Input)
        field.focus()
        field.select_all()

    @property
    def is_empty(self) -> bool:
        """No file shown and none waiting to be."""
        return self.browser.path is None and self._pending_open is None

    def open_file(self, path, kind: str | None = None, max_seq_len: int | None = None,
                  tokenizer_dir=None) -> None:
        """Show `path` (relative paths are under the project root); kind None or "auto" detects it.
        `max_seq_len` and `tokenizer_dir` (relative: under the root), when given, replace the tab's own, so the
        Train tab can show a file exactly as it would train on it."""
        browser = self.browser
        if max_seq_len is not None:
            self._set_max_seq_len(max_seq_len)
        if tokenizer_dir is not None:
            browser.use_tokenizer(tokenizer_dir)  # open_file loads it (and drops a late old one)
        if not self._ready:  # called by another tab before this one is on screen
            self._pending_open = (path, kind)
            browser.kind_choice = kind or "auto"  # the kind picker starts with it (see _kind_changed)
            return
        path = browser.open(path, kind)
        self.query_one("#ds-path", Input).value = browser.field_text(path)
        select = self.query_one("#ds-kind", Select)
        if select.value != browser.kind_choice:
            with select.prevent(Select.Changed):
                select.value = browser.kind_choice
        self._cancel_stats()
        self.query_one(StatsPane).reset("Statistics are computed when this view opens.")
        self.query_one(TokenPane).show(None)
        self._status(f"opening {path.name} …")
        self._open_worker(browser.gen, path)
        if browser.needs_tokenizer:
            self._load_tokenizer()

    def _set_max_seq_len(self, value: int) -> None:
        if self.browser.set_max_seq_len(value):
            fields = self.query("#ds-maxlen")  # not composed yet: compose puts it in the field
            if fields:
                fields.first(Input).value = str(value)

    @work(thread=True, exclusive=True, group="ds-open", exit_on_error=False)
    def _open_worker(self, gen: int, path: Path) -> None:
        try:
            check_data_file(path)
            lines, whole = head_lines(path)
            self.post_message(HeadRead(gen, path, lines, whole))
            jsonl = JsonlFile(path, progress=lambda d, t: self.post_message(IndexProgress(gen, d, t)))
            self.post_message(Indexed(gen, jsonl))
        except Exception as e:  # DataError, OSError: shown in the status line, never a crash
            self.post_message(OpenFailed(gen, str(e)))

    @on(HeadRead)
    def _head_read(self, m: HeadRead) -> None:
        if not self.browser.is_current(m.gen):
            return
        if not self.browser.opened(m.lines, m.whole):
            self._status("the first line is very long; showing it once the index is built …")
            return
        self._show(0)
        focused = self.screen.focused
        if focused is None or self in focused.ancestors_with_self:  # never pull focus from another tab
            self.query_one(SampleView).focus()
        self.post_message(self.FileOpened(m.path, self.browser.kind))

    @on(IndexProgress)
    def _index_progress(self, m: IndexProgress) -> None:
        text = self.browser.indexing(m.done, m.total) if self.browser.is_current(m.gen) else None
        if text is not None:
            self._status(text)

    @on(Indexed)
    def _indexed(self, m: Indexed) -> None:
        if not self.browser.is_current(m.gen):
            return
        if self.browser.indexed(m.jsonl):
            self._show(self.browser.index)
        self._update_status()
        if self.query_one("#ds-views", TabbedContent).active == "ds-stats":
            self.start_stats()

    @on(OpenFailed)
    def _failed(self, m: OpenFailed) -> None:
        if not self.browser.is_current(m.gen):
            return
        self._status(m.text, error=True)
        if self.query_one("#ds-path", Input).has_focus:  # as after an open that worked: o selects the path to correct
            self.main_view().focus()
        if self.browser.sample is None:
            self.query_one(SampleView).show(None, note=m.text)
        self.query_one(StatsPane).reset(m.text)

    # ---- moving between samples ------------------------------------------------------------------------------
    def go_to_line(self, line_number: int) -> bool:
        """Show a 1-based line; False (and a notice) when it is not in the file or not indexed yet."""
        if self.browser.path is None:
            return False
        why = self.browser.unavailable(line_number)
        if why is not None:
            self.notify(why, severity="warning")
            return False
        self._show(line_number - 1)
        return True

    def _show(self, i: int | None) -> None:
        if i is None:  # past either end
            return
        note = self.browser.select(i)
        self.query_one(SampleView).show(self.browser.sample, note=note)
        self._update_status()
        self._refresh_tokens()

    def action_next(self) -> None:
        self._show(self.browser.step(+1))

    def action_previous(self) -> None:
        self._show(self.browser.step(-1))

    def action_random(self) -> None:
        self._show(self.browser.random_line())

    def action_jump(self) -> None:
        self.query_one("#ds-views", TabbedContent).active = "ds-samples"
        self.query_one("#ds-jump", Input).focus()

    def action_raw(self) -> None:
        view = self.query_one(SampleView)
        self.query_one("#ds-views", TabbedContent).active = "ds-samples"
        view.show(self.browser.sample, raw=not view.raw_mode)

    def action_view(self, pane: str) -> None:
        self.query_one("#ds-views", TabbedContent).active = pane
        # Keep focus inside the view so its keys (d, c, n, ...) reach this tab rather than an input.
        self.main_view().focus()

    def main_view(self) -> Widget:
        """The view shown (samples, tokens or statistics): where focus goes for this tab's keys to work (the
        app's escape brings it here)."""
        pane = self.query_one("#ds-views", TabbedContent).active  # "" until its tabs are set up: the samples
        return self.query_one({"ds-tokens": TokenPane, "ds-stats": StatsPane}.get(pane, SampleView))

    def action_ids(self) -> None:
        self.query_one(TokenPane).toggle_ids()

    # ---- status line ---------------------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> None:
        self.query_one("#ds-status", Label).update(Text(text, style="bold red" if error else ""))

    def _update_status(self) -> None:
        if self.browser.path is None:
            return
        self._status(self.browser.status())
        self.query_one("#ds-pos", Label).update(self.browser.position())

    # ---- inputs and buttons ----------------------------------------------------------------------------------
    @on(Input.Submitted, "#ds-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.open_file(event.value.strip(), self.browser.kind_to_open(event.value.strip()))

    @on(Input.Submitted, "#ds-jump")
    def _jump_submitted(self, event: Input.Submitted) -> None:
        try:
            line = int(event.value)
        except ValueError:
            return
        if self.go_to_line(line):
            event.input.value = ""
            self.query_one(SampleView).focus()

    @on(Select.Changed, "#ds-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        if str(event.value) == self.browser.kind_choice or event.value != event.select.value:
            return  # the picker announcing its initial value after mount, or a change since superseded
        self.browser.kind_choice = str(event.value)
        if self.browser.path is not None:
            self.open_file(self.browser.path, self.browser.kind_choice)

    @on(Input.Changed, "#ds-maxlen")
    def _maxlen_changed(self, event: Input.Changed) -> None:
        if event.value != event.input.value:
            return  # superseded (the Train tab's Preview set another length since): acting on it would undo that
        try:
            value = int(event.value)
        except ValueError:
            return
        if self.browser.set_max_seq_len(value):
            self._refresh_tokens()
            if self.query_one("#ds-views", TabbedContent).active == "ds-stats":
                self.start_stats()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"ds-prev": self.action_previous, "ds-next": self.action_next, "ds-random": self.action_random,
                   "ds-raw": self.action_raw, "ds-stats-run": lambda: self.start_stats(force=True),
                   "ds-stats-cancel": self.action_cancel_stats}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    @on(TabbedContent.TabActivated, "#ds-views")
    def _view_changed(self, event: TabbedContent.TabActivated) -> None:
        event.stop()  # the app's own tab handler is for the outer tabs
        if event.pane.id == "ds-stats":
            self.start_stats()
        elif event.pane.id == "ds-tokens":
            self._refresh_tokens()

    @on(StatsPane.JumpTo)
    def _jump_to(self, message: StatsPane.JumpTo) -> None:
        if self.go_to_line(message.line_number):
            self.query_one("#ds-views", TabbedContent).active = "ds-samples"

    # ---- tokenizer and token view -----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="ds-tokenizer", exit_on_error=False)
    def _load_tokenizer(self) -> None:
        from dataset.preview import load_tokenizer  # imports model.tokenizer, which is torch-free
        wanted = self.browser.tokenizer_dir
        try:
            tok = load_tokenizer(wanted or default_tokenizer_dir(self.browser.root))
            self.post_message(TokenizerLoaded(tok, None, wanted))
        except Exception as e:
            self.post_message(TokenizerLoaded(None, str(e), wanted))

    @on(TokenizerLoaded)
    def _tokenizer_loaded(self, m: TokenizerLoaded) -> None:
        if not self.browser.tokenizer_loaded(m.tokenizer, m.error, m.wanted):
            return  # loaded for a tokenizer the user has since replaced
        self._refresh_tokens()
        if self.query_one("#ds-views", TabbedContent).active == "ds-stats":
            self.start_stats()

    def _refresh_tokens(self) -> None:
        job = self.browser.tokens(visible=self.query_one("#ds-views", TabbedContent).active == "ds-tokens")
        if isinstance(job, TokensJob):
            self._tokens_worker(job)
        else:
            self.query_one(TokenPane).show(None, job)

    @work(thread=True, exclusive=True, group="ds-tokens", exit_on_error=False)
    def _tokens_worker(self, job: TokensJob) -> None:
        from dataset.preview import token_views
        try:
            view = token_views(job.sample, job.tokenizer, job.max_seq_len, max_pieces=MAX_PIECES)
            self.post_message(TokensReady(job.key, view, None))
        except Exception as e:
            self.post_message(TokensReady(job.key, None, str(e)))

    @on(TokensReady)
    def _tokens_ready(self, m: TokensReady) -> None:
        if self.browser.tokens_current(m.key):
            self.query_one(TokenPane).show(m.view, m.error)

    # ---- statistics -------------------------------------------------------------------------------------------
    def start_stats(self, force: bool = False) -> None:
        """Compute statistics for the open file unless the shown (or running) ones already fit."""
        job = self.browser.stats(force)
        pane = self.query_one(StatsPane)
        if isinstance(job, str):
            pane.reset(job)
        elif job is not None:
            self._cancel_stats()
            pane.reset(f"Scanning {self.browser.path.name} …")
            pane.running(True)
            self._stats_worker = self._run_stats(job, pane.throughput)

    @work(thread=True, exclusive=True, group="ds-stats", exit_on_error=False)
    def _run_stats(self, job: StatsJob, throughput: float | None) -> None:
        from dataset.stats import compute_stats
        worker = get_current_worker()
        try:
            st = compute_stats(job.jsonl, job.kind, job.tokenizer, job.max_seq_len, throughput,
                               progress=lambda d, t: self.post_message(StatsProgress(job.gen, d, t)),
                               should_stop=lambda: worker.is_cancelled)
            self.post_message(StatsDone(job.gen, st, None))
        except Exception as e:
            self.post_message(StatsDone(job.gen, None, f"statistics failed: {e}"))

    @on(StatsProgress)
    def _stats_progress(self, m: StatsProgress) -> None:
        if self.browser.is_current(m.gen):
            self.query_one(StatsPane).progress(m.done, m.total)

    @on(StatsDone)
    def _stats_done(self, m: StatsDone) -> None:
        browser = self.browser
        if not browser.is_current(m.gen):
            return
        pane = self.query_one(StatsPane)
        if m.stats is None:
            pane.reset(m.error or "statistics failed")
            return
        browser.stats_done(m.stats)
        assert browser.jsonl is not None and browser.path is not None  # statistics run on an indexed file
        pane.progress(m.stats.processed_lines, max(m.stats.lines, 1) if m.stats.complete else len(browser.jsonl))
        tokenizer = getattr(browser.tokenizer, "path", None)
        pane.names = (browser.shown_path(browser.path), browser.shown_path(tokenizer) if tokenizer
                      else m.stats.tokenizer)
        pane.show(m.stats)
        self.post_message(self.StatsComputed(m.stats))

    def _cancel_stats(self) -> None:
        if self._stats_worker is not None and self._stats_worker.is_running:
            self._stats_worker.cancel()

    def action_cancel_stats(self) -> None:
        self._cancel_stats()
