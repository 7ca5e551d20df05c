"""A run directory: which folder may take a new run, its config.json, reading a previous run's settings for
--resume, and what a full or read-only disk under it is told."""
from __future__ import annotations

import errno
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dataset.atomic import write_atomic
from dataset.disk import human_size, refusal_message, refused
from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.runs.control import STOP_REQUEST
from minimind_tui.runs.launcher import LAUNCHER_LOG, LAUNCHER_PID, shell_quote
from minimind_tui.tokenizer_choice import choose_tokenizer_dir

from .memory_plan import VOCAB, param_count

# Settings that describe this invocation rather than the run; never carried into a resume.
NOT_INHERITED = ("run_dir", "resume", "mode")


def create(run_dir: Path) -> None:
    """A run directory named with --run_dir (new ones come from layout.create_run_dir): private to the user
    (0700), like the checkpoints inside."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


# What the dashboard's launcher and a starting trainer put into a run folder before its config.json: a folder
# holding nothing else is a new run's (the dashboard creates the folder, then starts the trainer into it).
STARTING_FILES = frozenset({layout.HEARTBEAT, layout.LOCK, layout.LOG, layout.NOTES, LAUNCHER_LOG, LAUNCHER_PID,
                            STOP_REQUEST})


def check_new_run_dir(run_dir: Path) -> None:
    """--run_dir of a new run must be missing, empty, a folder the dashboard has just made, or a run that never
    saved a checkpoint. Anything else is refused, naming it, before anything in it is touched: a run with
    checkpoints is continued with --resume, and a folder that is not a run at all (a Hugging Face export, a
    copy of someone's checkpoints/step_*) would have its config.json overwritten and its step folders
    deleted as interrupted saves."""
    run_dir = Path(run_dir)
    try:
        names = sorted(p.name for p in run_dir.iterdir())
    except FileNotFoundError:
        return
    except OSError as e:
        raise UserError(f"{run_dir}: {e.strerror or e}; pick another --run_dir") from None
    if is_run_dir(run_dir):
        if layout.complete_checkpoints(run_dir):
            raise UserError(f"{run_dir} already holds a run; continue it with --resume {shell_quote(run_dir)}, "
                            f"or pick a new --run_dir")
        return
    foreign = [name for name in names if not _starting_file(name)]
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise UserError(f"{run_dir}: not empty and not a run folder (it holds {shown}); pick a new or empty "
                        f"--run_dir, or --resume a run folder")


def is_run_dir(folder: Path) -> bool:
    """A folder a trainer has written to: its metrics.jsonl, or a config.json that records a run's settings
    (not, say, a Hugging Face model's config.json)."""
    config = layout.read_json(Path(folder) / layout.CONFIG)
    return (Path(folder) / layout.METRICS).is_file() or (
        config is not None and isinstance(config.get("settings"), dict) and isinstance(config.get("mode"), str))


def _starting_file(name: str) -> bool:
    """One of STARTING_FILES, or a temporary file of one of them (dataset.atomic's .NAME.PID.RANDOM.tmp, the
    lock's .trainer.lock.stale-PID)."""
    return name in STARTING_FILES or any(name.startswith(f".{known}.") for known in STARTING_FILES)


class RunDirUnwritable(UserError):
    pass


@contextmanager
def start_up_writes(run_dir: Path, settings: dict, undo: Callable[[], None] = lambda: None) -> Iterator[None]:
    """The trainer's first writes into its run folder (the folder, the lock, the log). A full disk, a quota, a
    read-only mount or a folder it may not write to ends in one line naming the folder, the space free there
    and what the run's checkpoints need (exit 2), instead of a traceback. What the start made is taken back:
    `undo()` releases what it holds (the lock, the log), and a folder that held nothing before is removed."""
    run_dir = Path(run_dir)
    try:
        fresh = not any(run_dir.iterdir())
    except FileNotFoundError:
        fresh = True
    except OSError:
        fresh = False  # a folder we may not list: never remove anything from it
    try:
        yield
    except OSError as e:
        if not refused(e):
            raise
        undo()
        if fresh:
            _remove_started(run_dir)
        raise RunDirUnwritable(unwritable_message(run_dir, e, settings)) from None


def _remove_started(run_dir: Path) -> None:
    """Remove what a failed start put into a folder that was empty, unless another trainer now holds it."""
    if (run_dir / layout.LOCK).exists():
        return  # not ours (ours was released by undo): that trainer's files stay
    for name in (layout.LOG, layout.HEARTBEAT, layout.METRICS):
        (run_dir / name).unlink(missing_ok=True)
    try:
        run_dir.rmdir()
    except OSError:
        pass  # something else is in it: leave it


def unwritable_message(path: Path, error: OSError, settings: dict) -> str:
    """`path` (the run folder), what the disk said, and the space the run's checkpoints need there."""
    per = checkpoint_bytes(settings)
    keep = settings.get("keep_last") or 1
    needed = ("each checkpoint of this model needs about "
              f"{human_size(per)} (weights and optimizer state), and --keep_last {keep} keeps {keep} of them "
              f"(one more while a save is written): about {human_size(per * (keep + 1))}") if per else \
        "checkpoints need room"
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = ("free space there" if full else "make it writable") + ", or start the run on another disk (--run_dir)"
    return refusal_message(path, error, needed, fix)


def checkpoint_bytes(settings: dict) -> int | None:
    """About how much one checkpoint folder of this model takes: model.pth holds the fp32 weights (4 bytes a
    parameter), state.pt AdamW's two fp32 moments (8 more). None when the settings do not say the model."""
    try:
        params = param_count(settings["dim"], settings["n_layers"], bool(settings.get("use_moe")),
                             settings["n_heads"], settings["n_kv_heads"], vocab=_vocab_size(settings))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return 12 * params


def _vocab_size(settings: dict) -> int:
    """The vocabulary of the tokenizer the run would choose (not yet read when the run folder is opened; only
    asked when a disk refused, so the cost of reading it does not matter); MiniMind's when it cannot tell."""
    try:
        from model import Tokenizer

        folder, _ = choose_tokenizer_dir(Path("."), settings.get("tokenizer"))
        return Tokenizer.from_dir(folder).vocab_size
    except Exception:  # noqa: BLE001 - whatever a missing or broken tokenizer raises: the estimate stays rough
        return VOCAB


def git_revision() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import torch
    try:
        ours = version("minimind-tui")
    except PackageNotFoundError:
        ours = None
    return {"python": platform.python_version(), "torch": torch.__version__, "minimind_tui": ours,
            "cuda": torch.version.cuda, "platform": platform.platform()}


def write_config(run_dir: Path, settings: dict, extra: dict) -> None:
    record = {
        "schema": 1,
        "mode": settings["mode"],
        "settings": settings,
        "command": shlex.join([sys.executable, "-m", "minimind_tui", *sys.argv[1:]]),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "versions": versions(),
        "git_revision": git_revision(),
        "created": time.time(),
        **extra,
    }
    with start_up_writes(run_dir, settings):  # the first file of any size a new run writes
        write_atomic(Path(run_dir) / layout.CONFIG, json.dumps(record, indent=2, default=str))


def saved_settings(run_dir: Path, mode: str) -> dict:
    path = Path(run_dir) / layout.CONFIG
    config = layout.read_json(path)
    if not config or not isinstance(config.get("settings"), dict) or not isinstance(config.get("mode"), str):
        raise UserError(f"{path}: missing or unreadable; cannot resume this run")
    if config.get("mode") != mode:
        raise UserError(f"{run_dir} is a {config.get('mode')} run; resume it with `train {config.get('mode')} "
                        f"--resume {shell_quote(run_dir)}`")
    settings = {k: v for k, v in config["settings"].items() if k not in NOT_INHERITED}
    _check_types(settings, path)
    return settings


_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_types(settings: dict, path: Path) -> None:
    """A hand-edited config.json: each setting must have its default's type (an int where a float belongs)."""
    from .args import COMMON_DEFAULTS, MODE_DEFAULTS

    defaults = {**COMMON_DEFAULTS, **{k: v for d in MODE_DEFAULTS.values() for k, v in d.items()}}
    for name, value in settings.items():
        default = defaults.get(name)
        if default is None or value is None:
            continue
        kinds = (int, float) if type(default) is float else (type(default),)
        if type(value) not in kinds:
            kind = _KIND.get(type(default), type(default).__name__)
            raise UserError(f"{path}: setting {name} is {value!r}, not {kind}; restore the run's value")
