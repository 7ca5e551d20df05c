"""Live view of one run: status, progress, charts of its metrics, last checkpoint, notes and the train.log tail.
Gets a RunView from the app (attributes down) and posts Stop/Resume requests (messages up)."""
from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Log, Static

from minimind_tui.runs.events import RunStatus
from minimind_tui.runs.summary import RunSummary, format_duration
from model.config import GENERATIONS

from ..curves import Curves
from ..plotting import ChartSettings
from ..run_watch import RunView

STATUS_STYLE = {
    "starting": ("◌", "yellow"), "live": ("●", "green"), "stalled": ("◍", "bold yellow"),
    "done": ("✔", "green"), "stopped": ("■", "cyan"), "failed": ("✖", "bold red"), "oom": ("✖", "bold red"),
    "killed": ("✖", "bold magenta"), "unreadable": ("⚠", "bold red"),
}


def generation_name(s: RunSummary) -> str:
    """What users call the run's MiniMind: MiniMind v1, MiniMind2, minimind-3."""
    return GENERATIONS.get(s.generation, s.generation)


def status_text(s: RunSummary) -> Text:
    icon, style = STATUS_STYLE.get(s.status, ("?", ""))
    label = "out of memory" if s.status == "oom" else s.status
    return Text(f"{icon} {label}", style=style)


def progress_text(s: RunSummary, curves: Curves | None = None) -> Text:
    """Step, epoch, throughput, ETA, time and peak memory. Throughput and ETA are averaged over the last minute
    of training (curves.rates) when the curves allow it: the trainer's figures cover one logging window each
    and jump with every save or slow batch."""
    t = Text()
    if s.status is RunStatus.UNREADABLE:
        return Text("this run folder's files cannot be read (below: why); other runs are not affected", style="dim")
    if s.step is None:
        return Text(f"preparing data: {s.preparing}" if s.preparing else "no steps yet", style="dim")
    if s.total:
        t.append(f"step {s.step:,}/{s.total:,} ({100 * s.step / s.total:.0f}%)", style="bold")
    else:
        t.append(f"step {s.step:,}", style="bold")
    if s.epoch is not None:
        t.append(f"  epoch {s.epoch}" + (f"/{s.epochs}" if s.epochs else ""))
    rates = curves.rates() if curves is not None else None
    tokens_per_s = rates[0] if rates else s.tokens_per_s
    eta = s.eta_s
    if rates and eta is not None and s.total:  # the summary says whether an ETA applies (a live run's)
        eta = max(s.total - s.step, 0) * rates[1]
    if tokens_per_s:
        t.append(f"  {tokens_per_s:,.0f} tok/s")
    if eta is not None:
        t.append(f"  ETA {format_duration(eta)}")
    t.append(f"  time {format_duration(s.duration_s)}")
    if s.mem_peak_gb:
        t.append(f"  peak {s.mem_peak_gb:.1f} GB")
    stage = stage_text(s)
    if stage:
        t.append("\n")
        t.append_text(stage)
    return t


# How the monitor names a DPO or distillation step's own figures (RunSummary.stage_metrics).
STAGE_LABELS = {"reward_margin": "margin", "reward_accuracy": "pref. accuracy", "reward_chosen": "chosen",
                "reward_rejected": "rejected", "ce_loss": "CE loss", "distill_loss": "distill loss"}


def stage_text(s: RunSummary) -> Text:
    """The last step's figures of the run's stage beside its loss: DPO's reward margin, preference accuracy and
    the chosen/rejected rewards; distillation's cross-entropy and distillation losses. Empty for other runs."""
    t = Text()
    for key, value in s.stage_metrics:
        shown = f"{100 * value:.0f}%" if key == "reward_accuracy" else f"{value:.4g}"
        t.append(("  " if t else "") + f"{STAGE_LABELS[key]} ", style="dim")
        t.append(shown, style="bold" if key in ("reward_margin", "reward_accuracy") else "")
    return t


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
        self.chart_settings = ChartSettings()
        self._charts_pending = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="monitor-head"):
            yield Static("no run selected — launch one from the Train tab", id="monitor-status")
            for name, variant in (("Stop", "error"), ("Resume", "primary")):
                button = Button(name, id=name.lower(), variant=variant, compact=True, disabled=True)
                button.display = False  # shown when it applies to the run shown
                yield button
        yield Static("", id="monitor-progress")
        yield Container(id="monitor-charts")  # the ChartGrid, mounted with the first curves (it imports numpy)
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
        curves_changed = (previous is None or previous.curves is not view.curves
                          or previous.eval_points != view.eval_points)
        if previous is None or previous.summary != s or view.reset_log or curves_changed:
            self._render_summary(s)
        if curves_changed or view.reset_log:
            self.draw_charts()

    def set_chart_settings(self, settings: ChartSettings) -> None:
        self.chart_settings = settings
        self.draw_charts()

    def draw_charts(self) -> None:
        view = self.view
        if view is None or view.curves is None:
            return
        holder = self.query_one("#monitor-charts", Container)
        if not holder.children:
            # The chart module imports numpy and textual-plot (~0.2 s): the run's status and progress are
            # painted first, the charts a frame later.
            if not self._charts_pending:
                self._charts_pending = True
                self.call_after_refresh(self._build_charts)
            return
        from .charts import ChartGrid, ChartRun
        run = ChartRun(view.summary.run_id, view.curves, evals=view.eval_points)
        holder.query_one(ChartGrid).show([run], self.chart_settings)

    def _build_charts(self) -> None:
        if not self.is_attached or not self.app.is_running:  # a frame that came after the quit: nothing to show
            return
        from .charts import ChartGrid
        self.query_one("#monitor-charts", Container).mount(ChartGrid(id="monitor-grid"))
        self._charts_pending = False
        self.draw_charts()

    def set_stopping(self, note: str | None) -> None:
        self.stopping_note = note
        if self.view is not None:
            self._render_summary(self.view.summary)

    def _render_summary(self, s: RunSummary) -> None:
        head = Text.assemble(status_text(s), "  ", (s.run_id, "bold"), f"  {s.mode or '?'}",
                             f"  {generation_name(s)}", (f"  {s.dataset}" if s.dataset else "", "dim"))
        if s.world_size > 1:
            head.append(f"  ×{s.world_size} GPUs")
        self.query_one("#monitor-status", Static).update(head)
        self.query_one("#monitor-progress", Static).update(progress_text(s, self.view.curves if self.view else None))
        notes = Text()
        if s.last_ckpt_step is not None:
            notes.append(f"last checkpoint: step {s.last_ckpt_step:,}", style="green")
        else:
            notes.append("no checkpoint yet", style="dim")
        if s.can_resume:  # on the first line: a long reason below must not push it out of view
            notes.append("  → press r to resume from it", style="bold")
        curves = self.view.curves if self.view else None
        if curves is not None and curves.resumes:  # the yellow lines on the charts
            notes.append(f"  │ resumed at step {', '.join(f'{r:,}' for r in curves.resumes)}", style="yellow")
        if self.stopping_note:
            notes.append(f"\n{self.stopping_note}", style="bold yellow")
        if s.reason:
            error = s.status.ended_badly or s.status is RunStatus.UNREADABLE
            notes.append(f"\n{s.reason}", style="bold red" if error else "")
        if s.nonfinite_steps or s.note:
            notes.append("\n")
            if s.nonfinite_steps:
                notes.append(f"⚠ {s.nonfinite_steps:,} optimizer step{'s' * (s.nonfinite_steps != 1)} skipped "
                             "(inf/NaN gradient)  ", style="bold yellow")
            if s.note:
                notes.append(f"note: {s.note}", style="italic")
        if s.notes:
            notes.append(f"\n{s.notes[-1]}", style="yellow")
        self.query_one("#monitor-notes", Static).update(notes)
        # Only what applies is offered: Stop for a live run, Resume for one that has ended with a checkpoint.
        for button, shown in (("#stop", s.is_live), ("#resume", s.can_resume)):
            self.query_one(button, Button).display = shown
            self.query_one(button, Button).disabled = not shown

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        if self.view:
            self.post_message(self.StopRequested(self.view.summary.run_id))

    @on(Button.Pressed, "#resume")
    def _resume(self) -> None:
        if self.view:
            self.post_message(self.ResumeRequested(self.view.summary.run_id))
