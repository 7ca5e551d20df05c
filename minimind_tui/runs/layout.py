"""Where things live inside a run directory, and how to find runs and checkpoints on disk.

runs/<run-id>/
    config.json          every argument, the exact command, versions, git revision
    metrics.jsonl        one JSON event per line (schema: events.py)
    train.log            the trainer's stdout and stderr
    heartbeat            touched every few seconds by a live trainer (mtime = last sign of life)
    trainer.lock         "PID START_TIME HOST" of the single writer (pids.py)
    notes.txt            what the user wrote about the run (`runs note`); shown by `runs list`
    checkpoints/step_00000123/
        model.pth        plain fp32 state dict, loadable by MiniMind's own scripts
        state.pt         optimizer, scaler, schedule position, RNG, data position (resume only)
        meta.json        step, mode, model config, tokenizer dir, loss
        COMPLETE         written last: a folder without it is an interrupted save and is never used
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from dataset.atomic import write_atomic

from . import pids
from .reader import read_regular

RUNS = "runs"  # under the project folder (--root)
CONFIG = "config.json"
METRICS = "metrics.jsonl"
LOG = "train.log"
HEARTBEAT = "heartbeat"
LOCK = "trainer.lock"
CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
MODEL_FILE = "model.pth"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
NOTES = "notes.txt"

HEARTBEAT_EVERY_S = 2.0
# A run whose heartbeat is older than this is not alive (the trainer touches it every HEARTBEAT_EVERY_S,
# also while a long step or a save runs, from a side thread).
HEARTBEAT_STALE_S = 15.0


def new_run_id(mode: str, now: float | None = None) -> str:
    t = time.localtime(now)
    return f"{time.strftime('%Y%m%d-%H%M%S', t)}-{mode}"


def runs_dir(root: Path) -> Path:
    """The folder holding every run of a project."""
    return Path(root) / RUNS


def run_path(root: Path, run_id: str) -> Path:
    """Where the run `run_id` of the project at `root` lives."""
    return runs_dir(root) / run_id


def create_run_dir(root: Path, mode: str, now: float | None = None) -> Path:
    """A new, empty run directory runs/<time>-<mode>, private to the user (0700: runs may hold private data).
    Runs started within the same second get -2, -3, ...: mkdir fails for all but one of two racing creators."""
    runs = runs_dir(root)
    runs.mkdir(parents=True, exist_ok=True)
    base = new_run_id(mode, now)
    for n in range(1, 1000):
        run_dir = runs / (base if n == 1 else f"{base}-{n}")
        try:
            run_dir.mkdir(mode=0o700)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run directory under {runs}")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:08d}"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / COMPLETE).is_file())


def heartbeat_age(run_dir: Path, now: float | None = None) -> float | None:
    try:
        mtime = (Path(run_dir) / HEARTBEAT).stat().st_mtime
    except FileNotFoundError:
        return None
    return (now if now is not None else time.time()) - mtime


def is_alive(run_dir: Path, now: float | None = None) -> bool:
    """Heartbeat fresh and, when the lock names a process on this host, that very process still runs."""
    age = heartbeat_age(run_dir, now)
    if age is None or age > HEARTBEAT_STALE_S:
        return False
    record = pids.read_record(Path(run_dir) / LOCK)
    return record is None or not record.here or record.running()


def lock_pid(run_dir: Path) -> int | None:
    """The pid trainer.lock records, running or not (pids.live_pid says whether it still is)."""
    record = pids.read_record(Path(run_dir) / LOCK)
    return None if record is None else record.pid


def list_runs(root: Path) -> list[Path]:
    """Run directories under root/runs, newest first."""
    runs = runs_dir(root)
    if not runs.is_dir():
        return []
    return newest_first([p for p in runs.iterdir() if _is_run(p)])


def _is_run(folder: Path) -> bool:
    try:
        return folder.is_dir() and ((folder / CONFIG).exists() or (folder / METRICS).exists())
    except OSError:  # one we may not look into is listed: its summary says why it cannot be read
        return True


def newest_first(folders: list[Path]) -> list[Path]:
    """Folders by modification time, newest first; one deleted meanwhile is left out (not an error)."""
    dated = []
    for p in folders:
        try:
            dated.append((p.stat().st_mtime, p))
        except FileNotFoundError:
            continue
    return [p for _, p in sorted(dated, key=lambda d: d[0], reverse=True)]


@dataclass
class CheckpointInfo:
    path: Path          # the weights file (.pth)
    label: str          # what a person reads: "runs/<id> step 1200 (sft)" or "out/full_sft_512.pth"
    mode: str | None    # "pretrain", "sft" or None when unknown
    step: int | None
    mtime: float


def find_checkpoints(root: Path) -> list[CheckpointInfo]:
    """Every usable weights file under root/out and root/runs, newest first."""
    root = Path(root)
    found: list[CheckpointInfo] = []
    out = root / "out"
    if out.is_dir():
        for p in out.glob("*.pth"):
            name = p.name
            mode = "sft" if "sft" in name else "pretrain" if name.startswith("pretrain") else None
            found.append(CheckpointInfo(p, f"out/{name}", mode, None, p.stat().st_mtime))
    for run in list_runs(root):
        for ck in complete_checkpoints(run):
            if meta_damaged(ck):
                continue  # resume skips it too
            meta = read_json(ck / META_FILE) or {}
            step = meta.get("step")
            mode = meta.get("mode")
            found.append(CheckpointInfo(ck / MODEL_FILE, f"{run.name} step {step} ({mode})", mode, step,
                                        (ck / COMPLETE).stat().st_mtime))
    return sorted(found, key=lambda c: c.mtime, reverse=True)


def write_private(path: Path, text: str) -> None:
    """Replace a small file with one readable by its owner only (0600) whatever the caller's umask: the
    dashboard runs with the user's umask (often 022) but writes into private run directories."""
    write_atomic(path, text, mode=0o600)


def read_note(run_dir: Path) -> str:
    """The run's note ("" without one). Read only if it is a regular file: a FIFO there would block."""
    try:
        data = read_regular(Path(run_dir) / NOTES, limit=64 << 10)
        return data.decode("utf-8").strip() if data else ""
    except (OSError, UnicodeDecodeError):
        return ""


def write_note(run_dir: Path, text: str) -> None:
    """Set (or, with empty text, remove) the run's note."""
    path = Path(run_dir) / NOTES
    if text.strip():
        write_private(path, text.strip() + "\n")
    else:
        path.unlink(missing_ok=True)


# MiniMind's names for the weights in out/: pretrain_512.pth, full_sft_640_moe.pth.
WEIGHTS_PREFIX = {"pretrain": "pretrain", "sft": "full_sft", "lora": "lora", "dpo": "rlhf", "distill": "full_dist"}


def weights_name(mode: str, dim: int, use_moe: bool) -> str:
    return f"{WEIGHTS_PREFIX[mode]}_{dim}{'_moe' if use_moe else ''}.pth"


def meta_damaged(checkpoint: Path) -> bool:
    """A checkpoint folder whose meta.json is there but does not read as a JSON object: its checksums and
    settings are lost, so nothing picks it by itself (resume, chat and --init on a run folder, the lists)."""
    meta_file = Path(checkpoint) / META_FILE
    return meta_file.exists() and read_json(meta_file) is None


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`; None when it is missing or anything else (invalid, nested too deeply for the
    parser, an array or a number where an object belongs): callers treat all of those as absent."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
