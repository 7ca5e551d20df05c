"""A run directory's config.json; reading a previous run's settings for --resume."""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dataset.atomic import write_atomic
from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.runs.launcher import shell_quote

# Settings that describe this invocation rather than the run; never carried into a resume.
NOT_INHERITED = ("run_dir", "resume", "mode")


def create(run_dir: Path) -> None:
    """A run directory named with --run_dir (new ones come from layout.create_run_dir): private to the user
    (0700), like the checkpoints inside."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


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
