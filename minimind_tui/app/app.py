"""MiniMindApp: tabs (Train, Runs, Dataset, Chat) under an always-visible GPU strip.

All I/O happens in thread workers that post messages: the GPU/host poller, the runs poller (tails every
run's metrics.jsonl and the selected run's train.log), launching and stopping. What varies (GPU monitor,
launcher, clock, poll intervals) is injected by `create_app` so tests run without timers or processes.
A worker that raises is never silent: the error is shown, and a poller starts again after a pause.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane, TextArea
from textual.worker import Worker, WorkerState, get_current_worker

from minimind_tui.gpu.monitor import GpuMonitor, GpuReading
from minimind_tui.gpu.system import SystemMonitor, SystemReading
from minimind_tui.runs import layout
from minimind_tui.runs.control import STOP_TIMEOUT_S, StopOutcome, stop_run
from minimind_tui.runs.events import RunStatus
from minimind_tui.runs.launcher import Launched, Launcher, TrainSpec
from minimind_tui.runs.summary import RunSummary, summarize
from minimind_tui.tokenizer_choice import recorded_meta

from .run_watch import Compared, RunsIndex, RunView, newest_live
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .widgets.gpu_panel import GpuPanel
from .widgets.run_monitor import RunMonitor
from .widgets.runs_tab import RunsTab
from .widgets.train_form import TrainForm

LIST_EVERY = 4  # runs poller: re-read every run's files every 4th poll (2 s); the selected run every poll
RESTART_DELAY_S = 2.0  # a poller that raised starts again after this pause (one failing at once must not spin)
# Worker group -> what the user reads when it fails.
WORKER_TASKS = {"runs": "Reading the runs", "gpu": "Reading the GPU and host", "launch": "Launching",
                "stop": "Stopping the run"}
# Built after the first frame, or when first shown: their imports and widgets would add ~0.4 s to first paint.
# pane id -> (module, class, name for messages, widget id)
LAZY_TABS = {
    "dataset": ("minimind_tui.app.widgets.dataset_tab", "DatasetTab", "Dataset", "dataset-tab"),
    "chat": ("minimind_tui.app.widgets.chat_tab", "ChatTab", "Chat", "chat-tab"),
}


def _optional_tab(module: str, cls: str, root: Path, name: str, id: str | None = None):
    """Chat and Dataset tabs are built by other modules; a broken or missing one must not take the app down."""
    import importlib
    try:
        return getattr(importlib.import_module(module), cls)(root=root, **({"id": id} if id else {}))
    except Exception as e:  # ImportError, or an error while building it
        return Static(f"The {name} tab is not available in this build ({type(e).__name__}: {e}).",
                      classes="placeholder", id=id)


@dataclass(frozen=True)
class Services:
    gpu_monitor: GpuMonitor
    system_monitor: SystemMonitor | None
    launcher: Launcher
    clock: Callable[[], float] = time.time
    poll_interval: float | None = 0.5   # runs poller; None: poll only when asked (tests)
    gpu_interval: float | None = 2.0    # GPU strip; None: read once at start, then only when asked
    stop_timeout: float = STOP_TIMEOUT_S
    preload_tabs: bool = True  # build the Dataset and Chat tabs right after the first frame (else when shown)
    restart_delay: float = RESTART_DELAY_S


class GpuUpdated(Message):
    def __init__(self, gpu: GpuReading, system: SystemReading | None):
        super().__init__()
        self.gpu, self.system = gpu, system


class RunsUpdated(Message):
    def __init__(self, summaries: list[RunSummary], view: RunView | None, compared: tuple[Compared, ...] = ()):
        super().__init__()
        self.summaries, self.view, self.compared = summaries, view, compared

    def can_replace(self, message: Message) -> bool:
        # A newer poll supersedes an older one still queued, except that a log reset must not be lost.
        return isinstance(message, RunsUpdated) and not (message.view and message.view.reset_log)


class MiniMindApp(App):
    CSS_PATH = "dashboard.tcss"
    TITLE = "minimind-tui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("1", "tab('train')", "Train", show=False),
        Binding("2", "tab('runs')", "Runs", show=False),
        Binding("3", "tab('dataset')", "Dataset", show=False),
        Binding("4", "tab('chat')", "Chat", show=False),
        # Inside a text field digits type; alt+digit still switches tabs, and escape leaves the field.
        Binding("alt+1", "tab('train')", "Train", show=False, priority=True),
        Binding("alt+2", "tab('runs')", "Runs", show=False, priority=True),
        Binding("alt+3", "tab('dataset')", "Dataset", show=False, priority=True),
        Binding("alt+4", "tab('chat')", "Chat", show=False, priority=True),
        Binding("escape", "leave_field", "Leave", key_display="esc",
                tooltip="leave the text field: the digit keys switch tabs again"),
        Binding("escape", "main_view", "Main view", show=False),  # the same from anywhere, unannounced
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+o", "preview", "Preview data"),
        Binding("ctrl+y", "copy_command", "Copy command", show=False),
        Binding("s", "stop", "Stop run"),
        Binding("r", "resume", "Resume"),
    ]

    def __init__(self, root: Path, services: Services, demo: bool = False):
        super().__init__()
        self.root = Path(root)
        self.services = services
        self.demo = demo
        self.selected_run: Path | None = None
        self.gpu_reading: GpuReading | None = None
        self.run_pids: set[int] = set()          # roots of live trainers, for the GPU/host strip
        self._wake_runs = threading.Event()      # poke the runs poller (selection changed, launched, tests)
        self._wake_gpu = threading.Event()
        self._pollers_stop = threading.Event()
        self._first_runs_poll = True
        self._last_seen: dict[str, tuple[str, int]] = {}  # run id -> (status, number of notes) already shown
        self._listed: set[str] | None = None  # run ids of the last list (None before the first)
        self.compared_runs: tuple[Path, ...] = ()  # runs the Runs tab compares (read by the runs poller)
        self._worker_errors: dict[str, str] = {}  # worker group -> the error last shown (not repeated while it lasts)

    # ---- layout ------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield GpuPanel(id="gpu-panel")
        with TabbedContent(initial="train", id="tabs"):
            with TabPane("Train", id="train"):
                yield TrainForm(self.root, demo=self.demo, id="train-form")
            with TabPane("Runs", id="runs"):
                yield RunsTab(id="runs-tab")
            for pane_id, (_, _, name, _) in LAZY_TABS.items():
                yield TabPane(name, id=pane_id)  # filled by lazy_tab()
        yield Footer(show_command_palette=False)  # ctrl+p still opens it; at 80 columns the keys need the room

    def on_mount(self) -> None:
        self.poll_gpu()
        self.poll_runs()
        if self.services.preload_tabs:
            self.call_after_refresh(self._preload_tabs)

    @property
    def shutting_down(self) -> bool:
        """The app has begun to close. Messages and callbacks queued before that still arrive (a poller's last
        round, the tab activation a reattach asked for; under Pilot the screens are taken down while this loop
        still runs): they must touch nothing, as the widgets they would update are going or gone."""
        return not self.is_running or not self.screen_stack

    def _preload_tabs(self) -> None:
        """One lazy tab per refresh, so keys pressed meanwhile are handled between them."""
        if self.shutting_down or not self.query("#tabs"):
            return  # building a tab now would race the teardown
        pending = [p for p in LAZY_TABS if not self.query_one(f"#{p}", TabPane).children]
        if pending:
            self.lazy_tab(pending[0])
            if len(pending) > 1:
                self.call_after_refresh(self._preload_tabs)

    def lazy_tab(self, pane_id: str) -> Widget:
        """The Dataset or Chat tab's widget, built and mounted now if it was not yet. It is in the DOM at once;
        its own compose and on_mount follow (DatasetTab.open_file waits for them)."""
        pane = self.query_one(f"#{pane_id}", TabPane)
        if pane.children:
            return pane.children[0]
        module, cls, name, widget_id = LAZY_TABS[pane_id]
        widget = _optional_tab(module, cls, self.root, name, id=widget_id)
        pane.mount(widget)
        return widget

    def on_unmount(self) -> None:
        self._pollers_stop.set()

    # ---- pollers (thread workers; post one message per round) -----------------------------------------------
    @work(thread=True, exclusive=True, group="gpu", exit_on_error=False)
    def poll_gpu(self) -> None:
        worker = get_current_worker()
        while True:
            system = self.services.system_monitor.read(self.run_pids) if self.services.system_monitor else None
            pids = system.trainer_pids if system else tuple(self.run_pids)
            self.post_message(GpuUpdated(self.services.gpu_monitor.read(pids), system))
            if self._idle_until_woken(self._wake_gpu, self.services.gpu_interval, worker) is None:
                return

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def poll_runs(self) -> None:
        worker = get_current_worker()
        index = RunsIndex(self.root, exit_code=self.services.launcher.exit_code, clock=self.services.clock)
        rounds, woken, summaries = 0, True, []
        while True:
            # The selected run every round; the whole list every few rounds or when asked (launch, stop, tests).
            if woken or rounds % LIST_EVERY == 0:
                summaries = index.summaries()
            rounds += 1
            selected = self.selected_run
            if selected is None and self._first_runs_poll:
                live = newest_live(summaries)  # reattach: a live run is what the user came back for
                if live is not None:
                    selected = layout.run_path(self.root, live.run_id)
            view = index.view(selected) if selected is not None else None
            if view is not None:  # the selected run's row is as fresh as its monitor
                summaries = [view.summary if s.run_id == view.summary.run_id else s for s in summaries]
            compared = self.compared_runs
            self.post_message(RunsUpdated(summaries, view, index.compare(compared) if compared else ()))
            woken = self._idle_until_woken(self._wake_runs, self.services.poll_interval, worker)
            if woken is None:
                return

    def _idle_until_woken(self, wake: threading.Event, interval: float | None, worker) -> bool | None:
        """Wait for the interval (forever if None) or a wake-up: True if woken, False if the interval passed,
        None when the app is closing. Waits in short slices so a closing app never waits on a poller thread."""
        deadline = None if interval is None else time.monotonic() + interval
        woken = True
        while not wake.wait(0.1):
            if worker.is_cancelled or self._pollers_stop.is_set():
                return None
            if deadline is not None and time.monotonic() >= deadline:
                woken = False
                break
        wake.clear()
        return None if worker.is_cancelled or self._pollers_stop.is_set() else woken

    def refresh_runs(self) -> None:
        self._wake_runs.set()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """A worker of the app that raised: say what failed (once while the same error repeats) and start the
        pollers again after a pause, so one bad round never freezes the Runs tab or the GPU strip for good."""
        if event.state != WorkerState.ERROR or self.shutting_down:
            return
        group, error = event.worker.group, event.worker.error
        restart = {"runs": self.poll_runs, "gpu": self.poll_gpu}.get(group)
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if self._worker_errors.get(group) != text:
            self._worker_errors[group] = text
            self.notify(text + ("\nRetrying every few seconds." if restart else ""), markup=False,
                        title=f"{WORKER_TASKS.get(group, event.worker.name)} failed", severity="error", timeout=30)
        if restart is not None:
            self.set_timer(self.services.restart_delay, lambda: None if self.shutting_down else restart())

    def refresh_gpu(self) -> None:
        self._wake_gpu.set()

    @on(GpuUpdated)
    def _gpu_updated(self, message: GpuUpdated) -> None:
        self.gpu_reading = message.gpu
        self._worker_errors.pop("gpu", None)  # working again: a new failure is news
        if self.shutting_down:
            return
        panel = self.query_one(GpuPanel)
        panel.gpu, panel.system = message.gpu, message.system
        form = self.query_one(TrainForm)
        form.gpu_count = len(message.gpu.gpus)
        form.gpu_reading = message.gpu  # the form compares with the GPUs it selects

    @on(RunsUpdated)
    def _runs_updated(self, message: RunsUpdated) -> None:
        if self.shutting_down:
            return
        self._worker_errors.pop("runs", None)  # working again: a new failure is news
        tab = self.query_one(RunsTab)
        tab.update_runs(message.summaries)
        self._announce(message.summaries, message.view)
        self._follow_new_run(message.summaries, message.view)
        # Roots of live trainers' process trees (torchrun and every rank), for the host and GPU readings.
        self.run_pids = {p for s in message.summaries if s.is_live for p in (s.pid, s.launcher_pid) if p}
        view = message.view
        if view is not None:
            if self.selected_run is None:  # reattached to a live run found on disk
                self.selected_run = view.run_dir
                tab.select(view.summary.run_id)
                if self._first_runs_poll:
                    self.action_tab("runs")
            if view.run_dir == self.selected_run:
                self.query_one(RunMonitor).show(view)
        if message.compared and tuple(layout.run_path(self.root, c.run_id) for c in message.compared) == \
                self.compared_runs:
            tab.show_comparison(message.compared)
        self._first_runs_poll = False

    def _announce(self, summaries: list[RunSummary], view: RunView | None) -> None:
        """Say so (with the terminal bell) when a run stalls or dies, or a checkpoint fails, while we watch.
        Runs already in that state when the app started are not announced again; a run folder that cannot be
        read is, once (its row has no room for the reason)."""
        current = {s.run_id: (s.status, None) for s in summaries}
        reasons = {s.run_id: s.reason for s in summaries}
        if view is not None:
            current[view.summary.run_id] = (view.summary.status, view.summary.notes)
            reasons[view.summary.run_id] = view.summary.reason
        for run_id, (status, notes) in current.items():
            before = self._last_seen.get(run_id)
            seen_notes = before[1] if before else (len(notes) if notes is not None else 0)
            if status is RunStatus.UNREADABLE and (before is None or before[0] != RunStatus.UNREADABLE):
                self.notify(f"{run_id}: {reasons[run_id]}", markup=False,
                            title="Run folder unreadable", severity="warning", timeout=30)
            if before is not None and status != before[0] and status.needs_attention:
                self.bell()
                self.notify(f"{run_id}: {status}", title="Run needs attention", severity="error", timeout=30,
                            markup=False)
            elif before is not None and status is RunStatus.DONE and RunStatus(before[0]).is_live:
                self.bell()  # a run that took hours: the user is probably looking elsewhere
                self.notify(f"{run_id} finished", title="Run done", timeout=30, markup=False)
            if notes is not None:
                for note in notes[seen_notes:]:
                    if "FAILED" in note or note.startswith("stalled"):
                        self.bell()
                        self.notify(f"{run_id}: {note}", severity="warning", timeout=30, markup=False)
                seen_notes = len(notes)
            self._last_seen[run_id] = (status, seen_notes)

    def _follow_new_run(self, summaries: list[RunSummary], view: RunView | None) -> None:
        """A run started elsewhere (another dashboard, a shell) while we watch: select it, so the table scrolls
        to it and the monitor streams it, unless the run shown is itself live (then only say so)."""
        listed = {s.run_id for s in summaries}
        before, self._listed = self._listed, listed
        if before is None:
            return  # the first list: reattaching picks the live run
        fresh = [s for s in summaries if s.run_id not in before and s.is_live]
        if not fresh or any(layout.run_path(self.root, s.run_id) == self.selected_run for s in fresh):
            return  # nothing new, or our own launch (already selected)
        newest = fresh[0]
        watching = view is not None and view.run_dir == self.selected_run and view.summary.is_live
        self.notify(f"{newest.run_id} started" + ("" if watching else ": showing it"), title="New run",
                    markup=False)
        if not watching:
            self.selected_run = layout.run_path(self.root, newest.run_id)
            self.query_one(RunsTab).select(newest.run_id)
            self.refresh_runs()

    @on(RunsTab.RunSelected)
    def _run_selected(self, message: RunsTab.RunSelected) -> None:
        self.selected_run = layout.run_path(self.root, message.run_id)
        self.refresh_runs()

    @on(RunsTab.CompareChanged)
    def _compare_changed(self, message: RunsTab.CompareChanged) -> None:
        self.compared_runs = tuple(layout.run_path(self.root, r) for r in message.run_ids)
        self.refresh_runs()

    # ---- launch ------------------------------------------------------------------------------------------
    def action_launch(self) -> None:
        self.query_one(TrainForm).request_launch()

    @on(TrainForm.LaunchRequested)
    def _launch_requested(self, message: TrainForm.LaunchRequested) -> None:
        spec = message.spec
        question = replacement_question(self.root, spec)
        if question is None:
            self.launch(spec)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.launch(spec)

        self.push_screen(ConfirmScreen(question, yes="Launch"), answered)

    @work(thread=True, group="launch", exit_on_error=False)
    def launch(self, spec: TrainSpec) -> None:
        try:
            launched = self.services.launcher.launch(self.root, spec.mode, spec.train_args(), spec.gpus)
        except Exception as e:
            self.call_from_thread(self.notify, f"{e}", title="Launch failed", severity="error", markup=False)
            return
        self.call_from_thread(self._show_launched, launched)

    def _show_launched(self, launched: Launched, verb: str = "started") -> None:
        if self.shutting_down:
            return
        self.notify(f"{verb} {launched.run_dir.name} (pid {launched.pid})", title="Training")
        self.selected_run = launched.run_dir
        self.query_one(RunsTab).select(launched.run_dir.name)
        self.action_tab("runs")
        self.refresh_runs()

    def action_copy_command(self) -> None:
        command = self.query_one(TrainForm).command_line()
        if command is None:
            self.notify("The form has no command yet: see what it says under the fields.", severity="warning")
            return
        self.copy_to_clipboard(command)  # OSC 52: works over SSH and inside tmux
        self.notify("command copied", title="Train")

    # ---- dataset preview -----------------------------------------------------------------------------
    def action_preview(self) -> None:
        self.query_one(TrainForm).request_preview()

    @on(TrainForm.PreviewRequested)
    def _preview_requested(self, message: TrainForm.PreviewRequested) -> None:
        """The Train tab's file, opened in the Dataset tab as that form would train on it."""
        tab = self.lazy_tab("dataset")
        if not hasattr(tab, "open_file"):  # the "not available" placeholder
            self.notify("The Dataset tab is not available in this build.", severity="warning")
            return
        tab.open_file(message.path, message.kind, max_seq_len=message.max_seq_len, tokenizer_dir=message.tokenizer)
        self.action_tab("dataset")

    # ---- stop / resume -----------------------------------------------------------------------------------
    def _selected_summary(self) -> RunSummary | None:
        view = self.query_one(RunMonitor).view
        if view is None or self.selected_run is None or view.run_dir != self.selected_run:
            return None
        return view.summary

    def action_stop(self) -> None:
        summary = self._selected_summary()
        if summary is not None:
            self._ask_stop(summary.run_id)

    @on(RunMonitor.StopRequested)
    def _stop_requested(self, message: RunMonitor.StopRequested) -> None:
        self._ask_stop(message.run_id)

    def _ask_stop(self, run_id: str) -> None:
        summary = self._selected_summary()
        if summary is None or not summary.is_live:
            self.notify(f"{run_id} is not running", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop(layout.run_path(self.root, run_id))

        self.push_screen(ConfirmScreen(f"Stop {run_id}?\nThe trainer finishes its step, saves a checkpoint and "
                                       f"exits; after {self.services.stop_timeout:g}s it is killed.", yes="Stop"),
                         answered)

    @work(thread=True, group="stop", exit_on_error=False)
    def stop(self, run_dir: Path) -> None:
        monitor = self.query_one(RunMonitor)
        progress = lambda text: self.call_from_thread(monitor.set_stopping, text)  # noqa: E731
        outcome: StopOutcome = stop_run(run_dir, timeout=self.services.stop_timeout, progress=progress)
        self.call_from_thread(monitor.set_stopping, None)
        severity = "information" if outcome.result in ("stopped", "not_running") else "warning"
        self.call_from_thread(self.notify, outcome.message, title="Stop", severity=severity)
        self.refresh_runs()

    def action_resume(self) -> None:
        summary = self._selected_summary()
        if summary is not None:
            self.post_message(RunMonitor.ResumeRequested(summary.run_id))

    @on(RunMonitor.ResumeRequested)
    def _resume_requested(self, message: RunMonitor.ResumeRequested) -> None:
        summary = self._selected_summary()
        if summary is None or not summary.can_resume:
            self.notify(f"{message.run_id} has nothing to resume from (it is running or has no checkpoint)",
                        severity="warning")
            return
        self.resume(layout.run_path(self.root, message.run_id), summary.mode or "pretrain", summary.world_size)

    @work(thread=True, group="launch", exit_on_error=False)
    def resume(self, run_dir: Path, mode: str, gpus: int) -> None:
        now = summarize(run_dir)  # the folder as it is now, not as the monitor last saw it
        if now is not None and now.is_live:  # resumed elsewhere since: the trainer would refuse
            self.call_from_thread(self.notify, f"{run_dir.name} is running: another dashboard or a shell resumed "
                                  f"it (trainer pid {now.pid})", title="Not resumed", severity="warning",
                                  markup=False)
            self.refresh_runs()
            return
        try:
            launched = self.services.launcher.resume(self.root, run_dir, mode, gpus)
        except Exception as e:
            self.call_from_thread(self.notify, f"{e}", title="Resume failed", severity="error", markup=False)
            return
        self.call_from_thread(self._show_launched, launched, "resumed")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Stop/Resume belong to the Runs tab and Launch to the Train tab (footer shows only what applies)."""
        if self.shutting_down:  # asked while the footer is taken down
            return True
        tab = self.query_one(TabbedContent).active if self.is_mounted else None
        if action in ("stop", "resume"):
            return tab == "runs"
        if action in ("launch", "preview", "copy_command"):
            return tab == "train"
        if action == "leave_field":  # in the footer only while typing: how to get the digit keys back
            return isinstance(self.focused, (Input, TextArea))
        return True

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if self.shutting_down:  # e.g. the switch to Runs a reattach asked for, arriving after the quit
            return
        self.refresh_bindings()
        if event.pane.id in LAZY_TABS:  # a click on the tab, before the preload got to it
            self.lazy_tab(event.pane.id)
        if event.pane.id == "train" and self.is_mounted:
            form = self.query_one(TrainForm)
            # Shown again: new checkpoints and weights since (a run may have finished). Not at start-up, when the
            # form's own first scan is still on its way: a second one landing at a random moment would sync the
            # dataset picker to whatever path was typed meanwhile.
            if form.scans_done:
                form.scan()
        if event.pane.id == "dataset" and self.is_mounted:
            self._show_train_dataset()

    def _show_train_dataset(self) -> None:
        """An empty Dataset tab shows the Train tab's file, as a Preview would: what the user was about to train on."""
        tab = self.lazy_tab("dataset")
        if not getattr(tab, "is_empty", False):
            return
        request = self.query_one(TrainForm).preview_request()
        if request is not None and (self.root / request.path).is_file():
            tab.open_file(request.path, request.kind, max_seq_len=request.max_seq_len,
                          tokenizer_dir=request.tokenizer)

    # ---- misc --------------------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        # Blur first: TabbedContent re-activates the pane holding the focused widget.
        self.set_focus(None)
        if tab in LAZY_TABS:
            self.lazy_tab(tab)
        self.query_one(TabbedContent).active = tab
        if tab == "runs":  # arrow keys pick a run straight away
            self.call_after_refresh(self.query_one("#runs-table").focus)

    def action_leave_field(self) -> None:
        self.action_main_view()

    def action_main_view(self) -> None:
        """Escape: back to the tab's main view (the runs table, the dataset's sample view, ...), where the tab's
        single-letter keys and the digit keys work; tabs without one keep no focus."""
        view = self._main_view()
        if view is not None:
            view.focus()
        else:
            self.set_focus(None)

    def _main_view(self) -> Widget | None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == "runs":
            return self.query_one(RunsTab).query_one("#runs-table")
        pane = self.query_one(f"#{tabs.active}", TabPane) if tabs.active else None
        tab = pane.children[0] if pane is not None and pane.children else None
        main_view = getattr(tab, "main_view", None)  # a lazy tab may offer one (the Dataset tab)
        try:
            return main_view() if callable(main_view) else None
        except NoMatches:  # asked before the tab has composed its views
            return None

    # ---- command palette (ctrl+p) ------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The dashboard's own commands first, each also bound to a key (the help says which), then Textual's
        (themes, screenshot, keys, quit)."""
        yield SystemCommand("Launch training", "Train tab: launch the run the form shows (ctrl+l)",
                            lambda: self._in_tab("train", self.action_launch))
        yield SystemCommand("Stop the selected run", "Runs tab: the trainer saves and exits (s)",
                            lambda: self._in_tab("runs", self.action_stop))
        yield SystemCommand("Resume the selected run", "Runs tab: continue from its last checkpoint (r)",
                            lambda: self._in_tab("runs", self.action_resume))
        yield SystemCommand("Compare the marked runs", "Runs tab: their curves overlaid, the settings that differ "
                            "(mark with m, then c)",
                            lambda: self._in_tab("runs", self.query_one(RunsTab).action_compare))
        yield SystemCommand("Open a dataset file", "Dataset tab: type the path of a .jsonl file (o)",
                            lambda: self._in_lazy_tab("dataset", "action_open_path"))
        yield SystemCommand("New chat", "Chat tab: start over with the model loaded (ctrl+n)",
                            lambda: self._in_lazy_tab("chat", "action_new_chat"))
        yield from super().get_system_commands(screen)

    def _in_tab(self, tab: str, action: Callable[[], object]) -> None:
        self.action_tab(tab)
        action()

    def _in_lazy_tab(self, pane_id: str, action: str) -> None:
        """Show the Dataset or Chat tab and run one of its actions (once it is built: its compose comes first)."""
        self.action_tab(pane_id)
        widget = self.lazy_tab(pane_id)
        if hasattr(widget, action):  # not the "not available" placeholder
            self.call_after_refresh(getattr(widget, action))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def replacement_question(root: Path, spec: TrainSpec) -> str | None:
    """The question to ask when the run would overwrite weights already in out/ (as MiniMind's scripts do, at
    every save): a run stopped early would leave its half-trained weights in place of finished ones."""
    target = Path(root) / spec.out_dir / layout.weights_name(spec.mode, spec.dim, spec.use_moe)
    if not target.is_file():
        return None
    meta = recorded_meta(target)
    live = ""
    if meta.get("run_id"):
        loss = meta.get("loss")
        origin = f"from run {meta['run_id']}, step {meta.get('step', '?')}" + (
            f", loss {loss:.3f}" if isinstance(loss, (int, float)) else "") + "; its run folder keeps a copy"
        writer = Path(meta["run_dir"]) if meta.get("run_dir") else layout.run_path(root, meta["run_id"])
        if layout.is_alive(writer):
            live = (f"\nRun {meta['run_id']} is still running and writes this file at each of its saves: the two "
                    f"runs would overwrite each other's weights.")
    else:
        origin = "not written by minimind-tui: no other copy here"
    try:
        shown = target.relative_to(root)
    except ValueError:
        shown = target
    return (f"{shown} already holds weights ({origin}).{live}\nThis run replaces them at its first save; if it is "
            f"stopped early, its half-trained weights stay there.\nLaunch anyway?")
