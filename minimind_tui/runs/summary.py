"""Turn a run's events, heartbeat and pids into what a person wants to know: status, loss, progress, reason.

`RunState` folds events in incrementally (the dashboard feeds it from a tail reader in a worker thread);
`RunState.summary()` decides the status (events.RunStatus): done, stopped, failed and oom come from the
`end` event; starting, live and stalled from a live process and its heartbeat; killed when there is neither;
unreadable when the folder's files make no sense (config.json not an object, an event with a string where a
number belongs, a FIFO where a file belongs): `reason` says which, and no other run is affected.
"""
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import layout, pids
from .control import STOP_REQUEST, read_stop_request
from .events import END_STATUSES, RunStatus, epoch_number
from .launcher import LAUNCHER_LOG, LAUNCHER_PID, launcher_pid
from .reader import NotRegularFile, open_regular, read_all, read_regular

# What a DPO or distillation step reports beside its loss (train/stages.py), in the order the monitor shows them.
STAGE_FIELDS = ("reward_margin", "reward_accuracy", "reward_chosen", "reward_rejected", "ce_loss", "distill_loss")
# Fields the summary computes with or formats as numbers, and those it shows or acts on as text. An event that
# holds anything else there was not written by our trainer: the run is reported unreadable, with the field
# named, rather than shown with figures made up from it (or taking the dashboard down when formatted).
NUMBER_FIELDS = ("time", "step", "total", "epoch", "loss", "lr", "tokens_per_s", "eta", "mem_peak_gb",
                 "world_size", "seconds_since_step", "batch_size", "suggestion", "done", "nonfinite_steps",
                 *STAGE_FIELDS)
TEXT_FIELDS = ("mode", "status", "path")
# Every file a summary reads or stats: each must be a regular file (or absent) for the folder to be read.
RUN_FILES = (layout.CONFIG, layout.METRICS, layout.LOG, layout.HEARTBEAT, layout.LOCK, LAUNCHER_PID, LAUNCHER_LOG,
             STOP_REQUEST, layout.NOTES)

# With no heartbeat yet, a just-started process is "starting" (torch import, tokenising) rather than stalled.
STARTUP_GRACE_S = 600.0


class UnreadableRun(Exception):
    """One run folder cannot be made sense of; the message is the reason shown in its row."""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: RunStatus
    reason: str = ""
    mode: str | None = None
    dataset: str | None = None
    step: int | None = None
    total: int | None = None
    epoch: int | None = None  # from 1
    epochs: int | None = None
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    duration_s: float | None = None
    mem_peak_gb: float | None = None
    last_ckpt_step: int | None = None
    last_ckpt_path: str | None = None
    pid: int | None = None
    launcher_pid: int | None = None  # torchrun or the trainer, as started by the launcher: root of the tree
    world_size: int = 1
    heartbeat_age_s: float | None = None
    notes: tuple[str, ...] = ()  # log/checkpoint_failed/stall messages, newest last
    preparing: str | None = None  # "tokenise 512/4000" while the trainer prepares data, before step 1
    generation: str = "v1"  # which MiniMind (config.json's settings.generation; runs made before it: v1)
    note: str = ""  # the user's note (`runs note`, notes.txt)
    nonfinite_steps: int = 0  # optimizer steps skipped for an inf/NaN gradient
    stage_metrics: tuple[tuple[str, float], ...] = ()  # the last step's STAGE_FIELDS it has (DPO, distill)

    @property
    def is_live(self) -> bool:
        return self.status.is_live

    @property
    def can_resume(self) -> bool:
        return self.status.resumable and self.last_ckpt_step is not None


@dataclass
class RunState:
    run_dir: Path
    start: dict | None = None
    last_step: dict | None = None
    last_ckpt: dict | None = None
    end: dict | None = None
    last_oom: dict | None = None
    last_stall: dict | None = None
    last_prepare: dict | None = None  # data preparation before the first step (tokenising, indexing)
    nonfinite_steps: int = 0  # the trainer's running count (step and nonfinite events carry it)
    first_time: float | None = None
    last_time: float | None = None
    notes: list[str] = field(default_factory=list)
    config: dict | None = None
    unreadable: str | None = None  # why the events make no sense (the first bad one); summary() raises it

    def add(self, events: list[dict]) -> None:
        """Fold events in. An event whose fields have impossible types is left out and makes the run
        unreadable (the reader's position still advances: a live run's later events are not read twice)."""
        for e in events:
            problem = _type_problem(e)
            if problem is not None:
                self.unreadable = self.unreadable or problem
                continue
            kind = e.get("event")
            t = e.get("time")
            if isinstance(t, (int, float)):
                self.first_time = t if self.first_time is None else self.first_time
                self.last_time = t
            if kind in ("step", "nonfinite") and isinstance(e.get("nonfinite_steps"), int):
                self.nonfinite_steps = e["nonfinite_steps"]
            if kind == "start":
                self.start = e
                self.end = None  # a resumed run appends a new start after the old end
            elif kind == "step":
                self.last_step = e
            elif kind == "prepare":
                self.last_prepare = e
            elif kind == "ckpt":
                self.last_ckpt = e
            elif kind == "end":
                self.end = e
            elif kind == "oom":
                self.last_oom = e
            elif kind == "stall":
                self.last_stall = e
                why = str(e.get("reason") or "")
                self._note(f"stalled at step {e.get('step')}: " + (why if why.startswith("GPU idle") else
                                                                   f"no step for {_secs(e.get('seconds_since_step'))}"))
            elif kind == "checkpoint_failed":
                self._note(f"checkpoint at step {e.get('step')} FAILED: {e.get('reason')}")
            elif kind == "log" and e.get("message"):
                self._note(str(e["message"]))

    def _note(self, text: str) -> None:
        self.notes.append(text)
        del self.notes[:-20]

    def _config(self) -> dict:
        if not self.config:  # the trainer writes config.json a moment after the launcher creates the run
            self.config = read_config(self.run_dir)
        return self.config

    def summary(self, now: float | None = None, exit_code: int | None = None) -> RunSummary:
        """What the run's files say; raises UnreadableRun when they make no sense (see read_isolated)."""
        if self.unreadable is not None:
            raise UnreadableRun(self.unreadable)
        now = time.time() if now is None else now
        step = self.last_step or {}
        start = self.start or {}
        cfg = self._config()
        # The trainer records its resolved flags under "settings" (older layouts: "args" or top level).
        args = next((cfg[k] for k in ("settings", "args") if isinstance(cfg.get(k), dict)), cfg)
        for problem in (_field_problem(layout.CONFIG, "mode", cfg.get("mode"), str),
                        _field_problem(layout.CONFIG, "epochs", args.get("epochs"), (int, float))):
            if problem is not None:
                raise UnreadableRun(problem)
        status, reason, pid, hb_age = self._status(now, exit_code)
        mode = start.get("mode") or cfg.get("mode") or _mode_from_id(self.run_dir.name)
        running = status.is_live
        end_time = (self.end or {}).get("time") or (now if running else self.last_time)
        ckpt_step, ckpt_path = self._last_checkpoint(status)
        return RunSummary(
            run_id=self.run_dir.name, status=status, reason=reason, mode=mode,
            dataset=_dataset_name(args.get("data_path")),
            step=step.get("step"), total=step.get("total") or start.get("total"),
            epoch=epoch_number(step, start), epochs=args.get("epochs"),
            loss=step.get("loss"), lr=step.get("lr"), tokens_per_s=step.get("tokens_per_s"),
            eta_s=step.get("eta") if status is RunStatus.LIVE else None,  # a stalled run has no end in sight
            duration_s=(end_time - self.first_time) if self.first_time is not None and end_time else None,
            mem_peak_gb=step.get("mem_peak_gb"),
            last_ckpt_step=ckpt_step, last_ckpt_path=ckpt_path,
            pid=pid, launcher_pid=launcher_pid(self.run_dir), world_size=int(start.get("world_size") or 1),
            heartbeat_age_s=hb_age, notes=tuple(self.notes),
            preparing=_preparing(self.last_prepare) if self.last_step is None else None,
            generation=_generation(args.get("generation")), note=layout.read_note(self.run_dir),
            nonfinite_steps=self.nonfinite_steps,
            stage_metrics=tuple((k, float(step[k])) for k in STAGE_FIELDS if step.get(k) is not None),
        )

    def _last_checkpoint(self, status: RunStatus) -> tuple[int | None, str | None]:
        """The checkpoint a resume would start from. A trainer killed between finishing a checkpoint and
        logging it leaves the disk ahead of the events, and resume reads the disk: so once the run is over,
        the disk wins. While it runs, the events are current and cost no directory scan."""
        event = self.last_ckpt or {}
        if event and status.is_live:
            return event.get("step"), event.get("path")
        done = layout.complete_checkpoints(self.run_dir)
        step = _ckpt_step(done[-1]) if done else None
        if step is None:
            return event.get("step"), event.get("path")
        if step == event.get("step"):
            return step, event.get("path")
        return step, str(done[-1].relative_to(self.run_dir))

    def _status(self, now: float, exit_code: int | None) -> tuple[RunStatus, str, int | None, float | None]:
        """What the folder says, whichever dashboard or shell started the run. `exit_code` is what this
        dashboard knows of the process it started there last; a trainer holding the lock overrides it (another
        dashboard or the CLI resumed the run since, or our own start was refused because that one writes)."""
        run_dir = self.run_dir
        hb_age = layout.heartbeat_age(run_dir, now)
        lock, launched = pids.read_record(run_dir / layout.LOCK), pids.read_record(run_dir / LAUNCHER_PID)
        # The recorded process itself, not whatever holds its pid now: a stale record reads as dead.
        writer = lock if lock is not None and lock.running() else None
        starter = launched if launched is not None and launched.running() and exit_code is None else None
        alive = writer or starter
        record = alive or lock or launched
        pid = record.pid if record is not None else None
        at = f" at step {self.last_step['step']}" if self.last_step else ""
        if self.end is not None and not _started_after(alive, self.end):
            status, reason = _end_status(self.end)
            if status is RunStatus.OOM:
                reason = _oom_reason(self.last_oom or self.end) or reason
            return status, reason, pid, hb_age
        if alive is not None:
            restarted = self.end is not None  # (only here when the process came after the end event)
            if hb_age is None:
                started = _mtime(run_dir / LAUNCHER_PID) or _mtime(run_dir)
                if started is not None and now - started > STARTUP_GRACE_S:
                    return (RunStatus.STALLED, f"process {pid} alive but no heartbeat after {_secs(now - started)}",
                            pid, None)
                return RunStatus.STARTING, "", pid, None
            if restarted and hb_age > layout.HEARTBEAT_STALE_S:  # the heartbeat is still the last process's
                return RunStatus.STARTING, "", pid, hb_age
            if hb_age > layout.HEARTBEAT_STALE_S:
                return (RunStatus.STALLED, f"no heartbeat for {_secs(hb_age)}{at} (process {pid} still exists)", pid,
                        hb_age)
            stall = self.last_stall
            if stall and (not self.last_step or stall.get("time", 0) >= self.last_step.get("time", 0)):
                return RunStatus.STALLED, f"no step for {_secs(stall.get('seconds_since_step'))}{at}", pid, hb_age
            refused = ""
            if writer is not None and exit_code and launched is not None and launched.pid != writer.pid:
                refused = (f"the trainer started from this dashboard exited with status {exit_code}: "
                           f"{_last_line(run_dir, (LAUNCHER_LOG,))}")
            return RunStatus.LIVE, refused, pid, hb_age
        if (record is None or not record.here) and hb_age is not None and hb_age <= layout.HEARTBEAT_STALE_S:
            return RunStatus.LIVE, "", None, hb_age  # a trainer that wrote no lock, or one on another host
        request = read_stop_request(run_dir)
        if request and request.get("result") == "killed":
            return RunStatus.KILLED, (f"killed{at}: a stop was requested and it had not exited after "
                                      f"{_secs(request.get('timeout'))}"), pid, hb_age
        if exit_code is not None and exit_code < 0:
            return RunStatus.KILLED, f"killed by {_signal_name(-exit_code)}{at}", pid, hb_age
        if exit_code is not None and exit_code > 0:
            return RunStatus.FAILED, f"exited with status {exit_code}{at}: {_last_line(run_dir)}", pid, hb_age
        if self.start is None and self.last_step is None:
            return RunStatus.FAILED, f"trainer exited before starting: {_last_line(run_dir)}", pid, hb_age
        # No end event and no process: how it died is unknown to a dashboard that did not launch it (only the
        # launching process can read the exit signal), but that it was killed is not.
        stopped = f", heartbeat stopped {_secs(hb_age)} ago" if hb_age is not None else ""
        return RunStatus.KILLED, (f"killed{at}: no end event and the process is gone{stopped} "
                                  "(killed by a signal, host out of memory or power loss)"), pid, hb_age


def _started_after(process: pids.Recorded | None, end: dict) -> bool:
    """A running process (trainer.lock, launcher.pid) that started after the run's end event: the run was
    started again (a resume) and has not written its own start event yet. Both times are the host's clock (a
    record without a start time, from an older version, never counts)."""
    ended = end.get("time")
    began = None if process is None else process.started
    return began is not None and isinstance(ended, (int, float)) and began > ended


def _end_status(end: dict) -> tuple[RunStatus, str]:
    """The status and reason an `end` event records; one the schema does not know reads as failed."""
    value = end.get("status") or RunStatus.DONE
    reason = str(end.get("reason") or "")
    if value in END_STATUSES:
        return RunStatus(value), reason
    return RunStatus.FAILED, f"unknown end status {value!r}" + (f": {reason}" if reason else "")


def summarize(run_dir: Path, now: float | None = None, exit_code: int | None = None) -> RunSummary | None:
    """One-shot summary of a run directory (the `runs list` command). A folder that cannot be read is an
    "unreadable" summary; one deleted meanwhile is None."""
    run_dir = Path(run_dir)

    def read() -> RunSummary:
        state = RunState(run_dir)
        state.add(read_all(run_dir / layout.METRICS))
        return state.summary(now, exit_code)

    return read_isolated(run_dir, read)


def read_isolated(run_dir: Path, read) -> RunSummary | None:
    """`read()` (a summary of run_dir) with whatever goes wrong kept to this one run: an unreadable summary
    naming the reason, or None when the folder is gone (deleted while the list was read). Files that are not
    regular files are refused before anything opens them."""
    try:
        check_run_files(run_dir)
        summary = read()
        return summary if run_dir.is_dir() else None  # deleted while read: what was read is of nothing
    except Exception as e:  # any reason at all: one run's files must never take the list down
        if not run_dir.is_dir():
            return None
        return unreadable(run_dir, _reason(e))


def check_run_files(run_dir: Path) -> None:
    """Raise NotRegularFile when one of the files a summary reads is a FIFO, socket, device or folder (opening
    a FIFO blocks until a writer comes), before the code that reads them (lock, pid and stop files) opens it."""
    for name in RUN_FILES:
        try:
            open_regular(run_dir / name).close()  # never blocks: the check is made on a non-blocking open
        except FileNotFoundError:
            continue


def unreadable(run_dir: Path, reason: str) -> RunSummary:
    return RunSummary(run_id=Path(run_dir).name, status=RunStatus.UNREADABLE, reason=reason,
                      mode=_mode_from_id(Path(run_dir).name))


def read_config(run_dir: Path) -> dict:
    """config.json as an object; {} while it is not written yet (the trainer writes it atomically, so what
    is there is complete). Anything else makes the run unreadable."""
    data = read_regular(Path(run_dir) / layout.CONFIG)
    if data is None:
        return {}
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise UnreadableRun(f"{layout.CONFIG}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UnreadableRun(f"{layout.CONFIG} holds {_type_name(config)}, not an object")
    return config


def _type_problem(e: dict) -> str | None:
    where = f"{layout.METRICS}: a {_short(e.get('event'))} event"
    checks = [(key, (int, float)) for key in NUMBER_FIELDS] + [(key, str) for key in TEXT_FIELDS]
    return next((p for key, types in checks if (p := _field_problem(where, key, e.get(key), types))), None)


def _field_problem(where: str, key: str, value, types) -> str | None:
    if value is None or (isinstance(value, types) and not isinstance(value, bool)):
        return None
    return f"{where} has {key} = {_short(value)}, not {'text' if types is str else 'a number'}"


def _reason(e: Exception) -> str:
    if isinstance(e, (UnreadableRun, NotRegularFile)):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        name = Path(e.filename).name if e.filename else ""
        return f"{name}: {e.strerror}" if name else e.strerror
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _short(value, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _type_name(value) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(value), type(value).__name__)


def _preparing(e: dict | None) -> str | None:
    if not e:
        return None
    done, total = e.get("done"), e.get("total")
    count = f" {done:,}/{total:,}" if isinstance(done, int) and isinstance(total, int) else ""
    return f"{e.get('stage') or 'preparing'}{count}"


def _oom_reason(e: dict) -> str:
    text = f"out of GPU memory at step {e.get('step')}"
    if e.get("suggestion"):
        text += f" — try batch size {e['suggestion']}"
    elif e.get("suggest_chunk_tokens"):
        text += f" — try chunk_tokens {e['suggest_chunk_tokens']} (smaller forward passes)"
    elif e.get("batch_size") == 1:
        text += " — even batch size 1 does not fit; try a shorter max_seq_len or a smaller model"
    return text


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _last_line(run_dir: Path, names: tuple[str, ...] = (layout.LOG, LAUNCHER_LOG)) -> str:
    """The last non-empty line of what the process printed: usually the error."""
    for name in names:
        try:
            with open_regular(run_dir / name) as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 4096))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except FileNotFoundError:
            continue
        if lines and not (name == LAUNCHER_LOG and lines[-1].startswith("[")):
            return lines[-1][:200]
    return "see launcher.log"


def _ckpt_step(folder: Path) -> int | None:
    try:
        return int(folder.name.split("_")[-1])
    except ValueError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _mode_from_id(run_id: str) -> str | None:
    for mode in ("pretrain", "sft", "lora", "dpo", "distill"):  # train.args.MODES (a run id ends in its mode)
        if mode in run_id:
            return mode
    return None


def _generation(value) -> str:
    """config.json's generation id; runs from before generations were recorded are v1's."""
    return value if isinstance(value, str) and value else "v1"


def _dataset_name(path) -> str | None:
    return Path(str(path)).name if path else None


def _secs(s) -> str:
    if not isinstance(s, (int, float)):
        return "?"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_duration(s: float | None) -> str:
    return "—" if s is None else _secs(s)
