"""Live view of one run: status, progress, loss and lr curves, last checkpoint, notes and the train.log tail.
Gets a RunView from the app (attributes down) and posts Stop/Resume requests (messages up)."""
from __future__ import annotations

from statistics import mean

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Log, Sparkline, Static

from minimind_tui.runs.summary import RunSummary, format_duration

from ..run_watch import RunView

STATUS_STYLE = {
    "starting": ("◌", "yellow"), "live": ("●", "green"), "stalled": ("◍", "bold yellow"),
    "done": ("✔", "green"), "stopped": ("■", "cyan"), "failed": ("✖", "bold red"), "oom": ("✖", "bold red"),
    "killed": ("✖", "bold magenta"),
}


def status_text(s: RunSummary) -> Text:
    icon, style = STATUS_STYLE.get(s.status, ("?", ""))
    label = "out of memory" if s.status == "oom" else s.status
    return Text(f"{icon} {label}", style=style)


def progress_text(s: RunSummary) -> Text:
    t = Text()
    if s.step is None:
        return Text(f"preparing data: {s.preparing}" if s.preparing else "no steps yet", style="dim")
    if s.total:
        t.append(f"step {s.step:,}/{s.total:,} ({100 * s.step / s.total:.0f}%)", style="bold")
    else:
        t.append(f"step {s.step:,}", style="bold")
    if s.epoch is not None:
        t.append(f"  epoch {s.epoch + 1}" + (f"/{s.epochs}" if s.epochs else ""))
    if s.tokens_per_s:
        t.append(f"  {s.tokens_per_s:,.0f} tok/s")
    if s.eta_s is not None:
        t.append(f"  ETA {format_duration(s.eta_s)}")
    t.append(f"  time {format_duration(s.duration_s)}")
    if s.mem_peak_gb:
        t.append(f"  peak {s.mem_peak_gb:.1f} GB")
    return t


def curve_label(name: str, points: tuple[float, ...], current: float | None, fmt: str) -> Text:
    if not points:
        return Text(f"{name} —", style="dim")
    now = current if current is not None else points[-1]
    return Text.assemble((f"{name} ", "bold"), (f"{now:{fmt}}", "bold cyan"),
                         (f"  first {points[0]:{fmt}} min {min(points):{fmt}}", "dim"))


def readable_loss(points: tuple[float, ...], keep: float = 0.9) -> list[float]:
    """Loss points for the curve, with the opening drop cut at the `keep` quantile. A run falls from ~8.8 to ~2
    in its first few percent and then creeps down for hours: scaled to the whole range, that creep is a flat
    line of the lowest bar. The label beside the curve still gives the first and lowest values."""
    if len(points) < 10:
        return list(points)
    top = sorted(points)[int(keep * (len(points) - 1))]
    return [min(p, top) for p in points]


def readable_lr(points: tuple[float, ...]) -> list[float]:
    """lr points as fractions of the largest, to 1%: the curve scales to its own range, so a change of a
    millionth (a warm-up's last step, float noise) would otherwise fill the whole height."""
    top = max(points, default=0.0)
    return [round(p / top, 2) for p in points] if top > 0 else list(points)


class LogTail(Log):
    """train.log tail that stays pinned to the newest line when its size changes (panels above it grow)."""

    def on_resize(self) -> None:
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True)


class RunMonitor(Vertical):
    class StopRequested(Message):
        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    class ResumeRequested(Message):
        def __init__(self, run_id: str):
            super().__init__()
            self.run_id = run_id

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.view: RunView | None = None
        self.stopping_note: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="monitor-head"):
            yield Static("no run selected — launch one from the Train tab", id="monitor-status")
            yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
            yield Button("Resume", id="resume", variant="primary", compact=True, disabled=True)
        yield Static("", id="monitor-progress")
        with Horizontal(classes="curve", id="loss-row"):
            yield Static("", id="loss-label", classes="curve-label")
            yield Sparkline([], id="loss-curve", summary_function=mean)
        with Horizontal(classes="curve"):
            yield Static("", id="lr-label", classes="curve-label")
            yield Sparkline([], id="lr-curve")
        yield Static("", id="monitor-notes")
        yield LogTail(id="monitor-log", max_lines=500)

    def show(self, view: RunView) -> None:
        """Called by the app with each new view of the selected run."""
        previous = self.view
        self.view = view
        if view.reset_log:
            self.query_one(Log).clear()
            self.stopping_note = None
        if view.new_log_lines:
            self.query_one(Log).write_lines(view.new_log_lines)
        s = view.summary
        if previous is None or previous.summary != s or view.reset_log:
            self._render_summary(s)

    def set_stopping(self, note: str | None) -> None:
        self.stopping_note = note
        if self.view is not None:
            self._render_summary(self.view.summary)

    def _render_summary(self, s: RunSummary) -> None:
        head = Text.assemble(status_text(s), "  ", (s.run_id, "bold"), f"  {s.mode or '?'}",
                             (f"  {s.dataset}" if s.dataset else "", "dim"))
        if s.world_size > 1:
            head.append(f"  ×{s.world_size} GPUs")
        self.query_one("#monitor-status", Static).update(head)
        self.query_one("#monitor-progress", Static).update(progress_text(s))
        self.query_one("#loss-label", Static).update(curve_label("loss", s.loss_points, s.loss, ".3f"))
        self.query_one("#loss-curve", Sparkline).data = readable_loss(s.loss_points)
        self.query_one("#lr-label", Static).update(curve_label("lr", s.lr_points, s.lr, ".1e"))
        self.query_one("#lr-curve", Sparkline).data = readable_lr(s.lr_points)
        notes = Text()
        if s.last_ckpt_step is not None:
            notes.append(f"last checkpoint: step {s.last_ckpt_step:,}", style="green")
        else:
            notes.append("no checkpoint yet", style="dim")
        if s.can_resume:  # on the first line: a long reason below must not push it out of view
            notes.append("  → press r to resume from it", style="bold")
        if self.stopping_note:
            notes.append(f"\n{self.stopping_note}", style="bold yellow")
        if s.reason:
            notes.append(f"\n{s.reason}", style="bold red" if s.status.ended_badly else "")
        if s.notes:
            notes.append(f"\n{s.notes[-1]}", style="yellow")
        self.query_one("#monitor-notes", Static).update(notes)
        self.query_one("#stop", Button).disabled = not s.is_live
        self.query_one("#resume", Button).disabled = not s.can_resume

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        if self.view:
            self.post_message(self.StopRequested(self.view.summary.run_id))

    @on(Button.Pressed, "#resume")
    def _resume(self) -> None:
        if self.view:
            self.post_message(self.ResumeRequested(self.view.summary.run_id))
