"""metrics.jsonl: one orjson object per line, flushed after each. Schema version SCHEMA_VERSION.

Every event has "event" and "time" (unix seconds). Events:
  start    schema, run_id, mode, pid, world_size, total (optimizer steps), config (model), params
  step     step, total, epoch (from 1; schema 1 counted from 0: read it with epoch_number), loss, lr,
           grad_norm, tokens_per_s (real), padded_tokens_per_s, samples, elapsed, eta, mem_peak_gb (CUDA only,
           else null: peak memory allocated by tensors since the previous step event, in GiB)
  eval     step, loss: the validation loss (--eval_data, or the share --eval_ratio holds out of the training
           data), with the training loss function, over the whole validation set after optimizer step `step`;
           every --eval_interval steps and at the end
  ckpt     step, path (relative to the run dir), seconds
  checkpoint_failed  step, reason
  oom      step, rank, batch_size, mem_gb (peak allocated since the last step event, GiB), suggestion
           (batch size to try, or null)
  stall    step, seconds_since_step
  log      level, message (notable things a person should see)
  end      status ("done" | "stopped" | "failed" | "oom"), reason, step
Added by the trainer (readers may ignore them):
  prepare  stage ("data" | "tokenise"), done, total: progress before the first step (tokenising the data)
  start    also resumed_from (step or null), batch_size, accumulation_steps, device, dtype, samples,
           tokenizer, data_path, setup_s
  step     also step_s (seconds per optimizer step over the window), rss_gb, mem_reserved_gb (peak memory
           reserved by the CUDA caching allocator over the window, GiB; null off CUDA), nonfinite_steps
           (optimizer steps skipped so far for an inf/NaN gradient); loss, rates and samples cover all ranks
  oom      also chunk_tokens (the pass budget in force, null: whole batch in one pass), suggest_chunk_tokens
           (a smaller budget to try when passes, not the batch, set the peak; suggestion is then null)
  eval     also samples (in the validation set), tokens (its loss-mask count: the loss is the summed
           cross-entropy divided by it), seconds (how long it took; left out of the step rates)
  ckpt     also weights (the MiniMind-style file refreshed with it, e.g. out/pretrain_512.pth; null when that
           export failed, which a `log` warning names: the checkpoint itself is saved), blocked_s
           (how long training paused to snapshot it; `seconds` is the background write); written when the
           write finished, so it may follow later step events
  log      level "warning": e.g. a corrupt checkpoint skipped on resume, bad lines skipped (--skip_bad_lines);
           level "info": e.g. the batch size --auto_batch_size chose
  nonfinite  step, count (steps skipped since the previous report), nonfinite_steps (in the whole run):
           written at the next log or save step after an optimizer step was skipped for an inf/NaN
           gradient; the weights and optimizer state were left untouched. Under --dtype float16 the
           GradScaler's own overflow skips count too (a few early on are normal while it finds its scale)
  stall    also threshold_s; written by the trainer's watchdog thread when no step finished for
           max(10 x the median step time, 60 s) (saves excluded), once per stalled step
Trainer exit statuses: 0 done or stopped, 1 crashed (end failed), 2 bad input, 3 out of memory (end oom).
Readers ignore unknown fields and unknown events, so adding either does not bump the version.
"""
from __future__ import annotations

import os
import threading
import time
from enum import Enum

import orjson

SCHEMA_VERSION = 2
EPOCH_FROM_ONE = 2  # the schema version from which `step` events count epochs from 1, as people (and the UI) do


class RunStatus(str, Enum):
    """A run's status. A `str` so the values compare equal to the strings in metrics.jsonl and in old code.

    The trainer's `end` event carries one of the END statuses; readers (summary.py) derive the others."""
    STARTING = "starting"   # process started, no heartbeat yet
    LIVE = "live"           # heartbeat fresh
    STALLED = "stalled"     # alive, but no heartbeat or no step for long
    DONE = "done"
    STOPPED = "stopped"     # a requested stop (SIGINT/SIGTERM): saved and exited
    FAILED = "failed"
    OOM = "oom"
    KILLED = "killed"       # no `end` event and no live process: SIGKILL, host OOM or power loss
    UNREADABLE = "unreadable"  # the run folder's files make no sense (summary.read_isolated): the reason says why

    # f"{status}" and str(status) give the value on every Python (3.11 changed what a str mixin prints).
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_live(self) -> bool:
        return self in (RunStatus.STARTING, RunStatus.LIVE, RunStatus.STALLED)

    @property
    def ended_badly(self) -> bool:
        return self in (RunStatus.FAILED, RunStatus.OOM, RunStatus.KILLED)

    @property
    def needs_attention(self) -> bool:
        """A status the dashboard warns about when a run turns to it."""
        return self is RunStatus.STALLED or self.ended_badly

    @property
    def resumable(self) -> bool:
        """Ended without finishing: can continue from its last checkpoint."""
        return self in (RunStatus.STOPPED, RunStatus.KILLED, RunStatus.FAILED, RunStatus.OOM)


END_STATUSES = (RunStatus.DONE, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.OOM)  # what `end` may carry


def epoch_number(step: dict, start: dict | None) -> int | None:
    """The 1-based epoch of a `step` event, whichever schema wrote it: `start` is the run's start event before
    it (version 1 counted from 0; a start without a version is this one's)."""
    epoch = step.get("epoch")
    if not isinstance(epoch, int):
        return None
    schema = (start or {}).get("schema")
    return epoch + 1 if isinstance(schema, int) and schema < EPOCH_FROM_ONE else epoch


def encode(event: str, now: float | None = None, **fields) -> bytes:
    record = {"event": event, "time": round(now if now is not None else time.time(), 3), **fields}
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


class EventWriter:
    """Append-only writer of whole lines: an event is on disk whole or not at all, so one never runs into the next.

    On a full disk write() first stores what fits and returns a short count; only the next write raises. The
    rest is written in a loop, and when a write fails the file is cut back to where the event began before the
    error is raised (the trainer reports it elsewhere). A line left torn anyway (a crash, a cut that failed) is
    ended with a newline before the next event, so readers lose only that line. Thread-safe: the stall
    watchdog writes from its own thread."""

    def __init__(self, path, clock=time.time):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        self._clock = clock
        self._lock = threading.Lock()
        size = os.fstat(self._fd).st_size
        self._torn = size > 0 and _last_byte(path, size) != b"\n"

    def emit(self, event: str, **fields) -> None:
        data = encode(event, now=self._clock(), **fields)
        with self._lock:
            if self._torn:
                data = b"\n" + data
            start = os.fstat(self._fd).st_size
            done = 0
            try:
                while done < len(data):
                    done += os.write(self._fd, memoryview(data)[done:])
            except BaseException:
                if done:
                    self._cut_back(start)
                raise
            self._torn = False

    def _cut_back(self, length: int) -> None:
        try:
            os.ftruncate(self._fd, length)
        except OSError:
            self._torn = True  # the next event starts on a line of its own

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _last_byte(path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)
