"""Helpers shared by every test folder (pytest's `pythonpath` setting in pyproject.toml puts this folder on the
path): the tiny model flags, the CLI in a subprocess, a run's events, and bounded waits (never a bare sleep)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all

ROOT = Path(__file__).resolve().parents[1]

# The demo-size model shrunk further: each training step takes milliseconds on one CPU core.
TINY = ["--dim", "32", "--n_layers", "1", "--n_heads", "4", "--n_kv_heads", "2", "--max_seq_len", "48",
        "--log_interval", "1"]


def conv(*turns: str, roles: list[str] | None = None) -> str:
    """One SFT line: {"conversations": [...]} with the turns, user and assistant in turn unless `roles` says."""
    roles = roles or ["user", "assistant"] * len(turns)
    return json.dumps({"conversations": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]},
                      ensure_ascii=False)


def write_demo_corpus(folder: Path) -> dict[str, Path]:
    """A small slice of the demo corpus: 96 pretraining lines and 64 conversations."""
    from minimind_tui.demo import pretrain_lines, sft_lines, write_jsonl

    write_jsonl(folder / "pretrain.jsonl", pretrain_lines(96))
    write_jsonl(folder / "sft.jsonl", sft_lines(64))
    return {"pretrain": folder / "pretrain.jsonl", "sft": folder / "sft.jsonl"}


def train_here(cwd: Path, *args: str, env: dict | None = None, monkeypatch=None) -> int:
    """The `train` CLI in this process (no second torch import: fast)."""
    from minimind_tui.cli import main as cli_main

    monkeypatch.chdir(cwd)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    try:
        return cli_main(["train", *args])
    finally:
        for k in env or {}:
            monkeypatch.delenv(k)


class FakeTokenCache:
    """What the batching code reads from a token cache, built from (ids, mask) pairs in memory."""

    def __init__(self, samples):
        self.tokens = np.concatenate([s[0] for s in samples]).astype(np.uint16)
        self.mask = np.concatenate([s[1] for s in samples]).astype(np.uint8)
        self.offsets = np.cumsum([0] + [len(s[0]) for s in samples])
        self.lengths = np.diff(self.offsets)

    def __len__(self):
        return len(self.lengths)


# ---- the CLI in a subprocess, as a user (or the dashboard's launcher) runs it ---------------------------------
def cli_env(extra: dict | None = None) -> dict:
    """The environment for a CLI subprocess: one compute thread (the box has two cores), unbuffered output, and
    this checkout importable whatever the current folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_cli(cwd: Path, *args: str, env: dict | None = None, module: str = "minimind_tui",
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` to the end; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def start_cli(cwd: Path, *args: str, env: dict | None = None, umask: int | None = None) -> subprocess.Popen:
    """`python -m minimind_tui ARGS` started in its own session (as the dashboard's launcher starts the trainer,
    so a signal can go to its whole group); stdout and stderr merged, as text."""
    def pre():
        if umask is not None:
            os.umask(umask)
    return subprocess.Popen([sys.executable, "-m", "minimind_tui", *args], cwd=cwd, env=cli_env(env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=pre if umask is not None else None)


# ---- what a run wrote -------------------------------------------------------------------------------------------
def events(run_dir: Path) -> list[dict]:
    """Every event in the run's metrics.jsonl so far ([] before it exists)."""
    path = Path(run_dir) / layout.METRICS
    return read_all(path) if path.exists() else []


def of_kind(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in events(run_dir) if e["event"] == kind]


def steps(run_dir: Path) -> list[dict]:
    return of_kind(run_dir, "step")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a trainer that is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- bounded waits ------------------------------------------------------------------------------------------------
def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.05):
    """Poll until condition() is truthy and return its value; fail naming `what` after `timeout` seconds, or at
    once with the process's output if `proc` died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


async def wait_for(pilot, condition, what="condition", rounds: int = 500):
    """Let the app run until condition() holds; fail after a bounded number of rounds. `what` may be a
    callable, called on failure, to say what the app showed instead."""
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


class Posted:
    """A `run_test(message_hook=...)`: every message the app dispatched, in order, each once (a bubbling message is
    dispatched at every node on its way up). Tests assert on these rather than on widgets' private state."""

    def __init__(self):
        self.messages: list = []
        self._seen: set[int] = set()

    def __call__(self, message) -> None:
        if id(message) not in self._seen:
            self._seen.add(id(message))
            self.messages.append(message)

    def of(self, kind) -> list:
        return [m for m in self.messages if isinstance(m, kind)]

    def notices(self, title: str | None = None) -> list[str]:
        """The text of every notification shown (`app.notify`), or of those with this title."""
        from textual.notifications import Notify

        return [str(m.notification.message) for m in self.of(Notify)
                if title is None or m.notification.title == title]


def monitor_summary(app):
    """The summary the dashboard's run monitor shows, or None before it shows a run."""
    from minimind_tui.app.widgets.run_monitor import RunMonitor

    view = app.query_one(RunMonitor).view
    return view.summary if view else None


def finishes(call, seconds: float = 10.0):
    """call() in a daemon thread: its result, or an AssertionError if it blocks (a FIFO open would, forever)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(_outcome(call)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"blocked for {seconds:g}s"
    return result[0]


def _outcome(call):
    """What call() returned, or the exception it raised."""
    try:
        return call()
    except Exception as e:
        return e



def with_random_adapter(model, seed: int = 1):
    """`model` with a LoRA adapter that changes the logits clearly (a fresh adapter's B is zero)."""
    import torch

    from model.lora import apply_lora, lora_targets

    apply_lora(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora_targets(model):
            for w in (layer.lora.A.weight, layer.lora.B.weight):
                w.copy_(0.5 * torch.randn(w.shape, generator=g))
    return model
