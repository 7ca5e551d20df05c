"""The statistics view: run/cancel, a progress bar, the summary with its histogram, and a table of problem
lines (bad, zero trained tokens, duplicates) that jumps to the line when a row is chosen."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static

from dataset.report import format_report
from dataset.stats import DatasetStats, bad_category

ROWS_PER_KIND = 1000
PROBLEM_COLUMNS = ("line", "problem", "detail")
TAIL_BYTES = 1 << 16


def measured_throughput(root: Path) -> tuple[float, str] | None:
    """Real tokens/s of the newest run that logged a step (its last step event), and that run's id."""
    from minimind_tui.runs.layout import METRICS, list_runs
    from minimind_tui.runs.reader import open_regular

    for run in list_runs(root):
        try:
            with open_regular(run / METRICS) as f:  # a FIFO there must not hang this worker
                f.seek(max(0, f.seek(0, 2) - TAIL_BYTES))
                tail = f.read().splitlines()
        except OSError:
            continue
        for raw in reversed(tail):
            try:
                e = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a cut first line or a line being written
            rate = e.get("tokens_per_s") if isinstance(e, dict) and e.get("event") == "step" else None
            if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
                return float(rate), run.name
    return None


class StatsPane(VerticalScroll):
    DEFAULT_CSS = """
    StatsPane { height: 1fr; padding: 0 1; }
    StatsPane > #ds-stats-bar { height: 1; margin-top: 1; }
    StatsPane > #ds-stats-bar > Button { margin-right: 1; min-width: 10; }
    StatsPane > #ds-stats-bar > Input { width: 18; }
    StatsPane > #ds-stats-bar > ProgressBar { width: 1fr; height: 1; padding: 0 1; }
    StatsPane > #ds-stats-bar > ProgressBar > Bar { width: 1fr; }
    StatsPane > #ds-stats-summary { height: auto; margin: 1 0; }
    StatsPane > #ds-problems { height: auto; max-height: 20; }
    StatsPane > Label { color: $text-muted; }
    """

    @dataclass(eq=False)
    class JumpTo(Message):
        """A problem row was chosen: show this 1-based line in the samples view."""
        line_number: int

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stats: DatasetStats | None = None
        self.names: tuple[str, str | None] | None = None  # (file, tokenizer) as the report shows them

    def compose(self) -> ComposeResult:
        with Horizontal(id="ds-stats-bar"):
            yield Button("Compute", id="ds-stats-run", variant="primary", compact=True)
            yield Button("Cancel", id="ds-stats-cancel", disabled=True, compact=True)
            yield Input(placeholder="throughput tok/s", id="ds-throughput", type="number", compact=True,
                        tooltip="real tokens/s of training, for the time per epoch")
            yield ProgressBar(total=100, show_eta=False, id="ds-stats-progress")
        yield Static("Statistics are computed in the background when this view opens (c: cancel).",
                     id="ds-stats-summary")
        yield Label("Problem lines (Enter jumps to the line):")
        table = DataTable(id="ds-problems", cursor_type="row", zebra_stripes=True)
        table.add_columns(*PROBLEM_COLUMNS)
        yield table

    @property
    def throughput(self) -> float | None:
        try:
            value = float(self.query_one("#ds-throughput", Input).value)
        except ValueError:
            return None
        return value if value > 0 else None

    def running(self, on_: bool) -> None:
        self.query_one("#ds-stats-run", Button).disabled = on_
        self.query_one("#ds-stats-cancel", Button).disabled = not on_

    def progress(self, done: int, total: int) -> None:
        self.query_one("#ds-stats-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def reset(self, note: str) -> None:
        self.stats = None
        self.running(False)
        self.query_one("#ds-stats-progress", ProgressBar).update(total=100, progress=0)
        self.query_one("#ds-stats-summary", Static).update(Text(note))
        self.query_one("#ds-problems", DataTable).clear()

    def show(self, st: DatasetStats) -> None:
        self.stats = st
        self.running(False)
        shown = replace(st, path=self.names[0], tokenizer=self.names[1]) if self.names else st
        report = format_report(shown, list_bad=False)
        if not st.complete:
            report = f"Cancelled after {st.processed_lines:,} lines: figures cover those lines only.\n" + report
        self.query_one("#ds-stats-summary", Static).update(Text(report))
        rows = [(f"bad-{b.line_number}", str(b.line_number), bad_category(b.reason), b.reason)
                for b in st.bad[:ROWS_PER_KIND]]
        rows += [(f"zero-{line}", str(line), "zero trained tokens",
                  f"nothing counts toward the loss at max_seq_len {st.max_seq_len}")
                 for line in st.zero_trained_examples[:ROWS_PER_KIND]]
        rows += [(f"pad-{line}", str(line), "trains on padding",
                  "the loss mask runs into padding: no reply closes the last user turn")
                 for line in st.pad_trained_examples[:ROWS_PER_KIND]]
        rows += [(f"dup-{line}", str(line), "duplicate", f"same as line {first}")
                 for line, first in st.duplicate_examples[:ROWS_PER_KIND]]
        table = self.query_one("#ds-problems", DataTable)
        # Widths measured here, not by the table on idle: its header line could be drawn (and cached) with the
        # old widths in between, and stay misaligned.
        table.clear(columns=True)
        for i, label in enumerate(PROBLEM_COLUMNS):
            table.add_column(label, width=max([cell_len(label), *(cell_len(r[i + 1]) for r in rows)]))
        for key, *cells in rows:
            table.add_row(*cells, key=key)

    @on(Input.Changed, "#ds-throughput")
    def _throughput_changed(self, event: Input.Changed) -> None:
        """A new throughput only changes the time estimate: no rescan."""
        event.stop()
        st = self.stats
        if st is not None and st.lengths is not None:
            st.throughput = self.throughput
            st.seconds_per_epoch = st.tokens_per_epoch / st.throughput if st.throughput else None
            self.show(st)

    @on(DataTable.RowSelected, "#ds-problems")
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.JumpTo(int(event.row_key.value.split("-")[1])))
