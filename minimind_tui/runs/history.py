"""A run's curves as a table, one row per optimizer step, for `runs export`: CSV, or TensorBoard event files.

Rows are keyed by step: after a resume from an earlier checkpoint the replayed steps replace the old ones (as
the charts draw them), and the validation loss of an `eval` event joins its step's row.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

from . import layout
from .events import epoch_number
from .reader import read_all

# What a row holds, in column order: the `step` event's numbers (events.py), then the validation loss.
STEP_FIELDS = ("loss", "lr", "grad_norm", "tokens_per_s", "padded_tokens_per_s", "samples", "elapsed",
               "mem_peak_gb", "mem_reserved_gb", "nonfinite_steps")
COLUMNS = ("step", "epoch", *STEP_FIELDS, "eval_loss", "time")
# TensorBoard tags, as its users expect them grouped.
TAGS = {"loss": "train/loss", "eval_loss": "eval/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
        "tokens_per_s": "perf/tokens_per_s", "mem_peak_gb": "perf/mem_peak_gb"}


def step_rows(events: list[dict]) -> list[dict]:
    """One dict per step (COLUMNS; a value the run did not log is None), ordered by step."""
    rows: dict[int, dict] = {}
    start = None
    for e in events:
        kind, step = e.get("event"), e.get("step")
        if kind == "start":
            start = e
        if kind not in ("step", "eval") or not isinstance(step, int):
            continue
        row = rows.setdefault(step, dict.fromkeys(COLUMNS))
        row["step"] = step
        if kind == "step":
            row.update({k: e.get(k) for k in STEP_FIELDS}, epoch=epoch_number(e, start), time=e.get("time"))
        else:
            row["eval_loss"] = e.get("loss")
    return [rows[s] for s in sorted(rows)]


def run_rows(run_dir: Path) -> list[dict]:
    return step_rows(read_all(Path(run_dir) / layout.METRICS))


def write_csv(rows: list[dict], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def tensorboard_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("tensorboard") is not None


def write_tensorboard(rows: list[dict], folder: Path) -> None:
    """Event files under `folder` (point `tensorboard --logdir` at it or at its parent), through PyTorch's
    writer; needs the optional `tensorboard` package."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for row in rows:
            for key, tag in TAGS.items():
                if isinstance(row.get(key), (int, float)):
                    writer.add_scalar(tag, row[key], global_step=row["step"], walltime=row.get("time"))
    finally:
        writer.close()
