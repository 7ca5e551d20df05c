"""What the Dataset tab shows, without Textual: the open file (its first lines, then its byte-offset index), the
sample under the cursor, the tokenizer, and which token view and statistics are current.

The tab's thread workers read and compute; each result comes back tagged with the generation (`gen`) of the open
it belongs to, and one about a file that is no longer open is dropped (`is_current`). Each method is a plain
state change that returns what to show or what to start, so the tab's logic is tested without an app
(tests/unit/test_dataset_browser.py) and the widget keeps only the layout, the keys and the workers.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from dataset.jsonl import JsonlFile
from dataset.preview import Sample, sample_from_raw
from dataset.stats import DatasetStats, detect_file_kind, detect_kind

KIND_UNKNOWN = ('Cannot tell pretraining ({"text"}), SFT ({"conversations"}) or DPO ({"chosen", "rejected"}) '
                "data in the first lines: choose the kind above.")
RAW_SHOWN = 2000  # characters of a line shown while its kind is unknown


@dataclass(frozen=True)
class TokensJob:
    """Tokenise one sample for the token view. Its result is shown while `key` still matches (`tokens_current`)."""
    key: tuple[int, int, int]  # (gen, line index, max_seq_len)
    sample: Sample
    tokenizer: object
    max_seq_len: int


@dataclass(frozen=True)
class StatsJob:
    """Statistics over the whole open file. Its result is shown while `gen` is current."""
    gen: int
    jsonl: JsonlFile
    kind: str
    tokenizer: object | None  # None: the tokenizer failed to load; statistics without token counts
    max_seq_len: int


class DatasetBrowser:
    """`DatasetBrowser(root)`; `open(path)` starts on a file, the workers' results come back through `opened`,
    `indexed`, `tokenizer_loaded` and `stats_done`."""

    def __init__(self, root: Path, tokenizer_dir: Path | None = None, max_seq_len: int = 512):
        self.root = Path(root)
        self.tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir else None  # None: the project's default
        self.max_seq_len = max_seq_len
        self.path: Path | None = None
        self.kind_choice = "auto"        # what the kind picker says: "auto", "pretrain", "sft" or "dpo"
        self.kind: str | None = None     # the kind in use: chosen, or detected (None: cannot tell)
        self.head: list[bytes] = []      # the first lines, read directly while the index is built
        self.head_whole = False          # ... and they are the whole file
        self.jsonl: JsonlFile | None = None
        self.index = 0                   # 0-based line shown
        self.sample: Sample | None = None
        self.tokenizer = None
        self.tokenizer_error: str | None = None
        self.gen = 0                     # bumps on every open; workers' results carry it
        self._stats_key: tuple | None = None  # what the shown (or running) statistics were computed for

    # ---- settings ---------------------------------------------------------------------------------------------
    def set_max_seq_len(self, value: int) -> bool:
        """True when it changed (a value below 2 is ignored: no sample would fit)."""
        if value < 2 or value == self.max_seq_len:
            return False
        self.max_seq_len = value
        return True

    def use_tokenizer(self, path) -> bool:
        """Use another tokenizer folder (relative: under the root); True when it changed, and then the loaded one
        is dropped (`needs_tokenizer`) and a late result for the old one is ignored."""
        path = Path(path).expanduser()
        path = path if path.is_absolute() else self.root / path
        if path == self.tokenizer_dir:
            return False
        self.tokenizer_dir = path
        self.tokenizer, self.tokenizer_error = None, None
        self._stats_key = None
        return True

    @property
    def needs_tokenizer(self) -> bool:
        return self.tokenizer is None and self.tokenizer_error is None

    def tokenizer_loaded(self, tokenizer, error: str | None, wanted: Path | None) -> bool:
        """A load finished; False when it was for a tokenizer since replaced."""
        if wanted != self.tokenizer_dir:
            return False
        self.tokenizer, self.tokenizer_error = tokenizer, error
        return True

    # ---- opening ----------------------------------------------------------------------------------------------
    def resolve(self, path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    def open(self, path, kind: str | None = None) -> Path:
        """Start on a file (kind None or "auto": detect it). Returns its full path; a worker then reads it."""
        path = self.resolve(path)
        self.gen += 1
        self.kind_choice = kind or "auto"
        self.path, self.kind, self.head, self.head_whole = path, None, [], False
        self.jsonl, self.index, self.sample, self._stats_key = None, 0, None, None
        return path

    def kind_to_open(self, path) -> str | None:
        """The kind to open a typed path with: the one chosen for the open file when it is that file again;
        a new file's kind is detected (None), whatever the previous one was read as."""
        return self.kind_choice if self.path is not None and self.resolve(path) == self.path else None

    def is_current(self, gen: int) -> bool:
        return gen == self.gen

    def opened(self, lines: list[bytes], whole: bool) -> bool:
        """The first lines were read. True when line 1 can be shown now; False when it alone is longer than
        what was read (it is shown once the index is built)."""
        self.head, self.head_whole = lines, whole
        self.kind = self.kind_choice if self.kind_choice != "auto" else detect_kind(lines)
        return bool(lines)

    def indexing(self, done: int, total: int) -> str | None:
        """The status line while the index is built (None once it is)."""
        if self.jsonl is not None:
            return None
        return f"indexing {100 * done // max(total, 1)}% (first lines shown meanwhile)"

    def indexed(self, jsonl: JsonlFile) -> bool:
        """The index is built: every line is reachable. True when the current line must be shown again (its
        kind was detected only now, from more lines, or nothing is shown yet)."""
        self.jsonl, self.head = jsonl, []
        detected = False
        if self.kind is None and self.kind_choice == "auto":
            self.kind = detect_file_kind(jsonl)
            detected = self.kind is not None
        return detected or self.sample is None

    # ---- samples ----------------------------------------------------------------------------------------------
    @property
    def n_lines(self) -> int | None:
        """Lines in the file, once known (from the index, or because the whole file fitted in the head)."""
        if self.jsonl is not None:
            return len(self.jsonl)
        return len(self.head) if self.head_whole else None

    @property
    def reachable(self) -> int:
        """Lines that can be shown now."""
        return len(self.jsonl) if self.jsonl is not None else len(self.head)

    def raw_line(self, i: int) -> bytes:
        return self.jsonl.line(i) if self.jsonl is not None else self.head[i]

    def select(self, i: int) -> str | None:
        """Make line i (0-based) the current one. Returns the note to show instead of a sample when the kind is
        unknown (the sample is then None), else None."""
        self.index = i
        if self.kind is None:
            self.sample = None
            return KIND_UNKNOWN + "\n\n" + self.raw_line(i).decode("utf-8", "replace")[:RAW_SHOWN]
        self.sample = sample_from_raw(self.raw_line(i), i, self.kind)
        return None

    def unavailable(self, line_number: int) -> str | None:
        """Why a 1-based line cannot be shown, or None when it can."""
        if 0 <= line_number - 1 < self.reachable:
            return None
        total = self.n_lines
        why = f"the file has {total:,} lines" if total is not None else "the index is still being built"
        return f"line {line_number} is not available: {why}"

    def step(self, delta: int) -> int | None:
        """The line `delta` away from the current one, or None past either end (or with no file)."""
        i = self.index + delta
        return i if self.path is not None and 0 <= i < self.reachable else None

    def random_line(self) -> int | None:
        return random.randrange(self.reachable) if self.path is not None and self.reachable else None

    def status(self) -> str:
        """`name · kind · lines · size` for the status line (a file is open)."""
        assert self.path is not None
        total = self.n_lines
        lines = f"{total:,} lines" if total is not None else f"{len(self.head):,}+ lines"
        size = f"{self.jsonl.size:,} bytes" if self.jsonl is not None else "indexing"
        return f"{self.path.name} · {self.kind or 'kind unknown'} · {lines} · {size}"

    def position(self) -> str:
        total = self.n_lines
        return f"line {self.index + 1:,} of {f'{total:,}' if total is not None else '?'}"

    # ---- token view -------------------------------------------------------------------------------------------
    def tokens(self, visible: bool) -> TokensJob | str:
        """What the token view needs: a job to run, or the text to show instead. Only a visible view is
        tokenised (a hidden one shows nothing until it is opened)."""
        if self.sample is None:
            return "No sample selected."
        if not self.sample.ok:
            return f"line {self.sample.line_number} is not a sample: {self.sample.error}"
        if self.tokenizer is None:
            return self.tokenizer_error or "loading the tokenizer …"
        if not visible:
            return ""
        return TokensJob((self.gen, self.index, self.max_seq_len), self.sample, self.tokenizer, self.max_seq_len)

    def tokens_current(self, key: tuple[int, int, int]) -> bool:
        return key == (self.gen, self.index, self.max_seq_len)

    # ---- statistics -------------------------------------------------------------------------------------------
    def stats(self, force: bool = False) -> StatsJob | str | None:
        """Statistics for the open file: a job to start; the text to show while they cannot start yet; or None
        when there is no file, or the shown (or running) ones already fit and `force` is not set."""
        if self.path is None:
            return None
        if self.jsonl is None:
            return "Waiting for the index … statistics start when it is built."
        if self.kind is None:
            return "Choose the kind (pretrain, sft or dpo) above first."
        if self.needs_tokenizer:
            return "Loading the tokenizer …"
        key = (self.gen, self.kind, self.max_seq_len, self.tokenizer is not None)
        if key == self._stats_key and not force:
            return None
        self._stats_key = key
        return StatsJob(self.gen, self.jsonl, self.kind, self.tokenizer, self.max_seq_len)

    def stats_done(self, stats: DatasetStats) -> None:
        if not stats.complete:
            self._stats_key = None  # a cancelled run is not a result to keep: opening the view again restarts it

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

    def field_text(self, path: Path) -> str:
        """The path as the path field shows it: project files as the user would type them."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
