"""The Dataset tab: see exactly what the model will be trained on.

Opening a file reads its first lines directly and shows line 1 at once, while a thread worker builds (or
loads) the byte-offset index; after that any line is one `pread` away, so memory does not grow with the
file. Tokenizing, the token view and the statistics run in thread workers that post messages back; the
statistics worker is cancellable. Nothing here imports torch (the tokenizer loads torch-free, in a worker).
"""
from __future__ import annotations

import random
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
from dataset.preview import Sample, default_tokenizer_dir, head_lines, sample_from_raw
from dataset.stats import detect_kind

from .dataset_samples import SampleView
from .dataset_stats import StatsPane
from .dataset_tokens import MAX_PIECES, TokenPane

KINDS = [("kind: auto", "auto"), ("pretrain", "pretrain"), ("sft", "sft")]


# ---- messages from the workers; each carries the open's generation so a late one about a previous file is dropped
class _Msg(Message):
    def __init__(self, **fields):
        super().__init__()
        self.__dict__.update(fields)


class _Opened(_Msg):
    """gen, path, lines (the first lines, read directly), whole (True when that is the whole file)."""


class _IndexProgress(_Msg):
    """gen, done, total (bytes)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, _IndexProgress)


class _Indexed(_Msg):
    """gen, jsonl."""


class _Failed(_Msg):
    """gen, text."""


class _TokenizerLoaded(_Msg):
    """tokenizer (None on failure), error, wanted (the tokenizer_dir asked for; None: the default)."""


class _TokensReady(_Msg):
    """key (gen, index, max_seq_len), view (None on failure), error."""


class _StatsProgress(_Msg):
    """gen, done, total (lines)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, _StatsProgress)


class _Throughput(_Msg):
    """value (real tokens/s measured by a run), run (its id)."""


class _StatsDone(_Msg):
    """gen, stats (None on failure), error."""


class DatasetTab(Widget):
    """`DatasetTab(root)`; `open_file(path, kind=None)` opens a file (the Train tab's picker calls it)."""

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

    class FileOpened(Message):
        """The first page of a file is showing (index may still be building)."""

        def __init__(self, path: Path, kind: str | None):
            super().__init__()
            self.path, self.kind = path, kind

    class StatsComputed(Message):
        def __init__(self, stats):
            super().__init__()
            self.stats = stats

    def __init__(self, root: Path, tokenizer_dir: Path | None = None, max_seq_len: int = 512, **kwargs):
        kwargs.setdefault("id", "dataset-tab")
        super().__init__(**kwargs)
        self.root = Path(root)
        self.tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir else None
        self.max_seq_len = max_seq_len
        self.path: Path | None = None
        self.kind: str | None = None
        self.kind_choice = "auto"
        self.head: list[bytes] = []
        self.head_whole = False
        self.jsonl: JsonlFile | None = None
        self.index = 0
        self.sample: Sample | None = None
        self.tokenizer = None
        self._tokenizer_error: str | None = None
        self._gen = 0                 # bumps on every open; workers' messages carry it
        self._stats_key: tuple | None = None  # (gen, kind, max_seq_len, tokenizer?) of shown/running stats
        self._pending_open: tuple | None = None
        self._ready = False           # set on mount; open_file before that is deferred
        self._stats_worker = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-bar"):
            yield Input(placeholder="path to a .jsonl file, Enter to open", id="ds-path", compact=True)
            yield Select(KINDS, value=self.kind_choice, allow_blank=False, id="ds-kind", compact=True)
            yield Label("seq len")
            yield Input(str(self.max_seq_len), placeholder="max_seq_len", id="ds-maxlen", type="integer",
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
            if self.path is None:
                self.query_one("#ds-path", Input).focus()
            else:
                self.action_view(self.query_one("#ds-views", TabbedContent).active)

    @work(thread=True, group="ds-throughput", exit_on_error=False)
    def _find_throughput(self) -> None:
        from .dataset_stats import measured_throughput
        found = measured_throughput(self.root)
        if found is not None:
            self.post_message(_Throughput(value=found[0], run=found[1]))

    @on(_Throughput)
    def _throughput_found(self, m: _Throughput) -> None:
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
        return self.path is None and self._pending_open is None

    def open_file(self, path, kind: str | None = None, max_seq_len: int | None = None,
                  tokenizer_dir=None) -> None:
        """Show `path` (relative paths are under the project root); kind None or "auto" detects it.
        `max_seq_len` and `tokenizer_dir` (relative: under the root), when given, replace the tab's own, so the
        Train tab can show a file exactly as it would train on it."""
        if max_seq_len is not None:
            self._set_max_seq_len(max_seq_len)
        if tokenizer_dir is not None:
            self._use_tokenizer(Path(tokenizer_dir).expanduser())
        if not self._ready:  # called by another tab before this one is on screen
            self._pending_open = (path, kind)
            self.kind_choice = kind or "auto"  # the kind picker starts with it (see _kind_changed)
            return
        path = Path(path).expanduser()
        if not path.is_absolute():
            path = self.root / path
        self.kind_choice = kind or "auto"
        try:  # show project files as the user would type them
            self.query_one("#ds-path", Input).value = str(path.relative_to(self.root))
        except ValueError:
            self.query_one("#ds-path", Input).value = str(path)
        select = self.query_one("#ds-kind", Select)
        if select.value != self.kind_choice:
            with select.prevent(Select.Changed):
                select.value = self.kind_choice
        self._gen += 1
        self.path, self.jsonl, self.head, self.index, self.sample = path, None, [], 0, None
        self._cancel_stats()
        self._stats_key = None
        self.query_one(StatsPane).reset("Statistics are computed when this view opens.")
        self.query_one(TokenPane).show(None)
        self._status(f"opening {path.name} …")
        self._open_worker(self._gen, path)
        if self.tokenizer is None and self._tokenizer_error is None:
            self._load_tokenizer()

    def _set_max_seq_len(self, value: int) -> None:
        if value < 2 or value == self.max_seq_len:
            return
        self.max_seq_len = value
        fields = self.query("#ds-maxlen")  # not composed yet: compose puts it in the field
        if fields:
            fields.first(Input).value = str(value)

    def _use_tokenizer(self, path: Path) -> None:
        path = path if path.is_absolute() else self.root / path
        if path == self.tokenizer_dir:
            return
        self.tokenizer_dir = path
        self.tokenizer, self._tokenizer_error = None, None  # open_file loads it (and drops a late old one)
        self._stats_key = None

    @work(thread=True, exclusive=True, group="ds-open", exit_on_error=False)
    def _open_worker(self, gen: int, path: Path) -> None:
        try:
            check_data_file(path)
            lines, whole = head_lines(path)
            self.post_message(_Opened(gen=gen, path=path, lines=lines, whole=whole))
            jsonl = JsonlFile(path, progress=lambda d, t: self.post_message(_IndexProgress(gen=gen, done=d, total=t)))
            self.post_message(_Indexed(gen=gen, jsonl=jsonl))
        except Exception as e:  # DataError, OSError: shown in the status line, never a crash
            self.post_message(_Failed(gen=gen, text=str(e)))

    @on(_Opened)
    def _opened(self, m: _Opened) -> None:
        if m.gen != self._gen:
            return
        self.head, self.head_whole = m.lines, m.whole
        self.kind = self.kind_choice if self.kind_choice != "auto" else detect_kind(m.lines)
        if not m.lines:  # the first line alone is longer than the head read: wait for the index
            self._status("the first line is very long; showing it once the index is built …")
            return
        self._show(0)
        focused = self.screen.focused
        if focused is None or self in focused.ancestors_with_self:  # never pull focus from another tab
            self.query_one(SampleView).focus()
        self.post_message(self.FileOpened(m.path, self.kind))

    @on(_IndexProgress)
    def _index_progress(self, m: _IndexProgress) -> None:
        if m.gen == self._gen and self.jsonl is None:
            self._status(f"indexing {100 * m.done // max(m.total, 1)}% (first lines shown meanwhile)")

    @on(_Indexed)
    def _indexed(self, m: _Indexed) -> None:
        if m.gen != self._gen:
            return
        self.jsonl = m.jsonl
        self.head = []  # the index reaches every line now
        detected = False
        if self.kind is None and self.kind_choice == "auto":
            from dataset.stats import detect_file_kind
            self.kind = detect_file_kind(m.jsonl)
            detected = self.kind is not None
        if detected or self.sample is None:
            self._show(self.index)
        self._update_status()
        if self.query_one("#ds-views", TabbedContent).active == "ds-stats":
            self.start_stats()

    @on(_Failed)
    def _failed(self, m: _Failed) -> None:
        if m.gen != self._gen:
            return
        self._status(m.text, error=True)
        if self.sample is None:
            self.query_one(SampleView).show(None, note=m.text)
        self.query_one(StatsPane).reset(m.text)

    # ---- moving between samples ------------------------------------------------------------------------------
    @property
    def n_lines(self) -> int | None:
        """Lines in the file, once known (from the index, or because the whole file fitted in the head)."""
        if self.jsonl is not None:
            return len(self.jsonl)
        return len(self.head) if self.head_whole else None

    def _reachable(self) -> int:
        return len(self.jsonl) if self.jsonl is not None else len(self.head)

    def _raw_line(self, i: int) -> bytes:
        return self.jsonl.line(i) if self.jsonl is not None else self.head[i]

    def go_to_line(self, line_number: int) -> bool:
        """Show a 1-based line; False (and a notice) when it is not in the file or not indexed yet."""
        i = line_number - 1
        if self.path is None:
            return False
        if not 0 <= i < self._reachable():
            total = self.n_lines
            why = f"the file has {total:,} lines" if total is not None else "the index is still being built"
            self.notify(f"line {line_number} is not available: {why}", severity="warning")
            return False
        self._show(i)
        return True

    def _show(self, i: int) -> None:
        self.index = i
        view = self.query_one(SampleView)
        if self.kind is None:
            self.sample = None
            raw = self._raw_line(i).decode("utf-8", "replace")[:2000]
            view.show(None, note="Cannot tell pretraining ({\"text\"}) from SFT ({\"conversations\"}) data in the "
                                 "first lines: choose the kind above.\n\n" + raw)
        else:
            self.sample = sample_from_raw(self._raw_line(i), i, self.kind)
            view.show(self.sample)
        self._update_status()
        self._refresh_tokens()

    def action_next(self) -> None:
        if self.path is not None and self.index + 1 < self._reachable():
            self._show(self.index + 1)

    def action_previous(self) -> None:
        if self.path is not None and self.index > 0:
            self._show(self.index - 1)

    def action_random(self) -> None:
        if self.path is not None and self._reachable():
            self._show(random.randrange(self._reachable()))

    def action_jump(self) -> None:
        self.query_one("#ds-views", TabbedContent).active = "ds-samples"
        self.query_one("#ds-jump", Input).focus()

    def action_raw(self) -> None:
        view = self.query_one(SampleView)
        self.query_one("#ds-views", TabbedContent).active = "ds-samples"
        view.show(self.sample, raw=not view.raw_mode)

    def action_view(self, pane: str) -> None:
        self.query_one("#ds-views", TabbedContent).active = pane
        # Keep focus inside the view so its keys (d, c, n, ...) reach this tab rather than an input.
        focus = {"ds-samples": SampleView, "ds-tokens": TokenPane, "ds-stats": StatsPane}[pane]
        self.query_one(focus).focus()

    def action_ids(self) -> None:
        self.query_one(TokenPane).toggle_ids()

    def shown_path(self, path) -> str:
        """A path as the user thinks of it: relative to the project, the bundled tokenizer by name, else with ~."""
        from minimind_tui.demo import demo_tokenizer_dir
        path = Path(path)
        if path.resolve() == demo_tokenizer_dir().resolve():
            return "bundled demo tokenizer"
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            home = Path.home()
            return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)

    # ---- status line ---------------------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> None:
        self.query_one("#ds-status", Label).update(Text(text, style="bold red" if error else ""))

    def _update_status(self) -> None:
        if self.path is None:
            return
        total = self.n_lines
        lines = f"{total:,} lines" if total is not None else f"{len(self.head):,}+ lines"
        size = f"{self.jsonl.size:,} bytes" if self.jsonl is not None else "indexing"
        self._status(f"{self.path.name} · {self.kind or 'kind unknown'} · {lines} · {size}")
        of = f"{total:,}" if total is not None else "?"
        self.query_one("#ds-pos", Label).update(f"line {self.index + 1:,} of {of}")

    # ---- inputs and buttons ----------------------------------------------------------------------------------
    @on(Input.Submitted, "#ds-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.open_file(event.value.strip(), self.kind_choice)

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
        if str(event.value) == self.kind_choice or event.value != event.select.value:
            return  # the picker announcing its initial value after mount, or a change since superseded
        self.kind_choice = str(event.value)
        if self.path is not None:
            self.open_file(self.path, self.kind_choice)

    @on(Input.Changed, "#ds-maxlen")
    def _maxlen_changed(self, event: Input.Changed) -> None:
        if event.value != event.input.value:
            return  # superseded (the Train tab's Preview set another length since): acting on it would undo that
        try:
            value = int(event.value)
        except ValueError:
            return
        if value >= 2 and value != self.max_seq_len:
            self.max_seq_len = value
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
        wanted = self.tokenizer_dir
        try:
            tok = load_tokenizer(wanted or default_tokenizer_dir(self.root))
            self.post_message(_TokenizerLoaded(tokenizer=tok, error=None, wanted=wanted))
        except Exception as e:
            self.post_message(_TokenizerLoaded(tokenizer=None, error=str(e), wanted=wanted))

    @on(_TokenizerLoaded)
    def _tokenizer_loaded(self, m: _TokenizerLoaded) -> None:
        if m.wanted != self.tokenizer_dir:
            return  # loaded for a tokenizer the user has since replaced
        self.tokenizer, self._tokenizer_error = m.tokenizer, m.error
        self._refresh_tokens()
        if self.query_one("#ds-views", TabbedContent).active == "ds-stats":
            self.start_stats()

    def _refresh_tokens(self) -> None:
        pane = self.query_one(TokenPane)
        if self.sample is None:
            pane.show(None, "No sample selected.")
        elif not self.sample.ok:
            pane.show(None, f"line {self.sample.line_number} is not a sample: {self.sample.error}")
        elif self.tokenizer is None:
            pane.show(None, self._tokenizer_error or "loading the tokenizer …")
        elif self.query_one("#ds-views", TabbedContent).active == "ds-tokens":  # only tokenize what is seen
            self._tokens_worker((self._gen, self.index, self.max_seq_len), self.sample, self.max_seq_len)
        else:
            pane.show(None, "")

    @work(thread=True, exclusive=True, group="ds-tokens", exit_on_error=False)
    def _tokens_worker(self, key: tuple, sample: Sample, max_seq_len: int) -> None:
        from dataset.preview import token_view
        try:
            view = token_view(sample, self.tokenizer, max_seq_len, max_pieces=MAX_PIECES)
            self.post_message(_TokensReady(key=key, view=view, error=None))
        except Exception as e:
            self.post_message(_TokensReady(key=key, view=None, error=str(e)))

    @on(_TokensReady)
    def _tokens_ready(self, m: _TokensReady) -> None:
        if m.key == (self._gen, self.index, self.max_seq_len):
            self.query_one(TokenPane).show(m.view, m.error)

    # ---- statistics -------------------------------------------------------------------------------------------
    def start_stats(self, force: bool = False) -> None:
        """Compute statistics for the open file unless the shown (or running) ones already fit."""
        pane = self.query_one(StatsPane)
        if self.path is None:
            return
        if self.jsonl is None:
            pane.reset("Waiting for the index … statistics start when it is built.")
            return
        if self.kind is None:
            pane.reset("Choose the kind (pretrain or sft) above first.")
            return
        if self.tokenizer is None and self._tokenizer_error is None:
            pane.reset("Loading the tokenizer …")
            return
        key = (self._gen, self.kind, self.max_seq_len, self.tokenizer is not None)
        if key == self._stats_key and not force:
            return
        self._cancel_stats()
        self._stats_key = key
        pane.reset(f"Scanning {self.path.name} …")
        pane.running(True)
        self._stats_worker = self._run_stats(self._gen, self.jsonl, self.kind, self.tokenizer, self.max_seq_len,
                                             pane.throughput)

    @work(thread=True, exclusive=True, group="ds-stats", exit_on_error=False)
    def _run_stats(self, gen: int, jsonl: JsonlFile, kind: str, tokenizer, max_seq_len: int, throughput) -> None:
        from dataset.stats import compute_stats
        worker = get_current_worker()
        try:
            st = compute_stats(jsonl, kind, tokenizer, max_seq_len, throughput,
                               progress=lambda d, t: self.post_message(_StatsProgress(gen=gen, done=d, total=t)),
                               should_stop=lambda: worker.is_cancelled)
            self.post_message(_StatsDone(gen=gen, stats=st, error=None))
        except Exception as e:
            self.post_message(_StatsDone(gen=gen, stats=None, error=f"statistics failed: {e}"))

    @on(_StatsProgress)
    def _stats_progress(self, m: _StatsProgress) -> None:
        if m.gen == self._gen:
            self.query_one(StatsPane).progress(m.done, m.total)

    @on(_StatsDone)
    def _stats_done(self, m: _StatsDone) -> None:
        if m.gen != self._gen:
            return
        pane = self.query_one(StatsPane)
        if m.stats is None:
            pane.reset(m.error or "statistics failed")
            return
        pane.progress(m.stats.processed_lines, max(m.stats.lines, 1) if m.stats.complete else len(self.jsonl))
        tokenizer = getattr(self.tokenizer, "path", None)
        pane.names = (self.shown_path(self.path), self.shown_path(tokenizer) if tokenizer else m.stats.tokenizer)
        pane.show(m.stats)
        if not m.stats.complete:
            self._stats_key = None  # a cancelled run is not a result to keep: opening the view again restarts it
        self.post_message(self.StatsComputed(m.stats))

    def _cancel_stats(self) -> None:
        if self._stats_worker is not None and self._stats_worker.is_running:
            self._stats_worker.cancel()

    def action_cancel_stats(self) -> None:
        self._cancel_stats()
