"""Start a trainer detached from the dashboard.

The trainer runs in its own session (start_new_session=True): closing the app, a dropped SSH connection or
Ctrl-C in the app never reaches it. stdin is /dev/null; stdout and stderr go to RUN_DIR/launcher.log (the
trainer writes train.log itself). The dashboard only ever talks to it through the run directory.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import layout, pids

LAUNCHER_LOG = "launcher.log"
# "PID START_TIME HOST" (pids.py) of the process we started (torchrun or the trainer); a session leader
LAUNCHER_PID = "launcher.pid"
# Set for every run: cuda:N then counts GPUs in PCI order, as NVML does, so the dashboard's GPU numbers and the
# trainer's agree (gpu/mapping.py).
RUN_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "PYTHONUNBUFFERED": "1"}
# Several GPUs on this machine: torchrun with its rendezvous stores on 127.0.0.1 only (torchrun_loopback.py).
TORCHRUN = "minimind_tui.runs.torchrun_loopback"


@dataclass
class TrainSpec:
    """What the Train form chose; flag names are MiniMind's so the shell command pastes into its recipes."""
    mode: str                      # train.args.MODES: pretrain, sft, lora, dpo, distill
    data_path: str
    batch_size: int = 32
    learning_rate: float = 5e-4
    epochs: int = 1
    accumulation_steps: int = 8
    dim: int = 512
    n_layers: int = 8
    max_seq_len: int = 512
    use_moe: bool = False
    dtype: str | None = None       # None: the trainer's choice for the device (no --dtype; the CPU has none)
    device: str = "cuda:0"
    init: str | None = None        # base weights (every mode but pretrain); None: the trainer's default
    out_dir: str = "out"
    gpus: int = 1
    extra: list[str] = field(default_factory=list)
    preset: str | None = None      # the model preset chosen (None: custom sizes)
    generation: str | None = None  # "v1", "gen2" (MiniMind2), "gen3" (minimind-3); None: the trainer decides

    def train_args(self) -> list[str]:
        # v1 goes without saying when a preset says it; custom sizes would leave it to the tokenizer's generation.
        named = self.generation is not None and (self.generation != "v1" or self.preset is None)
        generation = ["--generation", str(self.generation)] if named else []
        args = [self.mode, "--data_path", self.data_path, "--batch_size", str(self.batch_size),
                "--learning_rate", f"{self.learning_rate:g}", "--epochs", str(self.epochs),
                "--accumulation_steps", str(self.accumulation_steps), *generation,
                *(["--preset", self.preset] if self.preset else []), "--dim", str(self.dim),
                "--n_layers", str(self.n_layers), "--max_seq_len", str(self.max_seq_len),
                "--use_moe", "1" if self.use_moe else "0", *(["--dtype", self.dtype] if self.dtype else [])]
        if self.gpus <= 1:  # under torchrun each rank picks its own GPU from LOCAL_RANK
            args += ["--device", self.device]
        if self.init:
            args += ["--init", self.init]
        return args + ["--out_dir", self.out_dir, *self.extra]


def train_argv(train_args: list[str], run_dir: Path | str | None, gpus: int = 1,
               python: str = sys.executable) -> list[str]:
    """The exact argv. Several GPUs: torchrun (as `python -m`, without needing PATH), single node, listening on
    the loopback interface only."""
    tail = ["train", *train_args] + (["--run_dir", str(run_dir)] if run_dir is not None else [])
    if gpus > 1:
        return [python, "-m", TORCHRUN, "--nproc_per_node", str(gpus), "-m", "minimind_tui", *tail]
    return [python, "-m", "minimind_tui", *tail]


def shell_command(train_args: list[str], run_dir: str | None = None, gpus: int = 1) -> str:
    """The same command as a person would type it (what the Train tab shows for copying into a script)."""
    tail = shlex.join(["train", *train_args] + (["--run_dir", run_dir] if run_dir else []))
    if gpus > 1:
        return f"python -m {TORCHRUN} --nproc_per_node {gpus} -m minimind_tui {tail}"
    return f"minimind-tui {tail}"


def shell_quote(word: Path | str) -> str:
    """`word` as one shell word on one line, safe to paste: shlex.quote, except that a name holding a newline
    or another control character is written with bash/zsh's $'...' escapes, so it stays on one line (and a
    terminal escape sequence in a folder name is shown, not obeyed)."""
    text = str(word)
    if text.isprintable():
        return shlex.quote(text)
    escaped = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return "$'" + "".join(escaped.get(c) or (c if c.isprintable() else _code(c)) for c in text) + "'"


def _code(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def resume_command(mode: str, run_dir: Path | str) -> str:
    """What a person types to continue a stopped run (the trainer prints it when it stops)."""
    return f"minimind-tui train {mode} --resume {shell_quote(run_dir)}"


@dataclass
class Launched:
    run_dir: Path
    pid: int
    argv: list[str]


class Launcher(Protocol):
    def launch(self, root: Path, mode: str, train_args: list[str], gpus: int = 1) -> Launched: ...

    def resume(self, root: Path, run_dir: Path, mode: str, gpus: int = 1) -> Launched: ...

    def exit_code(self, run_dir: Path) -> int | None: ...


class ProcessLauncher:
    """Starts real trainer processes. Keeps their Popen objects so they are reaped (no zombies while the
    app runs) and so the app can tell "killed by signal 9" from "exited with status 1"."""

    def __init__(self, python: str = sys.executable, clock=time.time):
        self.python = python
        self.clock = clock
        self._procs: dict[Path, subprocess.Popen] = {}

    def launch(self, root: Path, mode: str, train_args: list[str], gpus: int = 1) -> Launched:
        run_dir = layout.create_run_dir(root, mode, self.clock())
        # Relative to root, the working directory of the trainer: keeps absolute paths out of the command.
        argv = train_argv(train_args, layout.run_path(Path(), run_dir.name), gpus, self.python)
        return self._start(Path(root), run_dir, argv)

    def resume(self, root: Path, run_dir: Path, mode: str, gpus: int = 1) -> Launched:
        argv = train_argv([mode, "--resume", _relative(run_dir, root)], None, gpus, self.python)
        return self._start(Path(root), Path(run_dir), argv)

    def _start(self, root: Path, run_dir: Path, argv: list[str]) -> Launched:
        log_path = run_dir / LAUNCHER_LOG
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab", buffering=0) as log:
            log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {shlex.join(argv)}\n".encode())
            env = {**os.environ, **RUN_ENV}
            proc = subprocess.Popen(argv, cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, env=env)
        layout.write_private(run_dir / LAUNCHER_PID, pids.record_line(proc.pid))
        self._procs[run_dir.resolve()] = proc
        return Launched(run_dir, proc.pid, argv)

    def exit_code(self, run_dir: Path) -> int | None:
        """The exit status of the process this launcher started last in run_dir (reaping it), or None if it
        runs or is unknown, or when launcher.pid names another process: another dashboard has started the run
        since, and what became of ours is history, not the run's status."""
        proc = self._procs.get(Path(run_dir).resolve())
        if proc is None:
            return None
        code = proc.poll()
        recorded = launcher_pid(run_dir)
        return code if recorded in (None, proc.pid) else None

    def reap(self) -> None:
        for proc in self._procs.values():
            proc.poll()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def launcher_pid(run_dir: Path) -> int | None:
    """The pid launcher.pid records, running or not (pids.live_pid says whether it still is)."""
    record = pids.read_record(Path(run_dir) / LAUNCHER_PID)
    return None if record is None else record.pid
