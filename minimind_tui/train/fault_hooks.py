"""Fault-injection hooks read from the environment, so reliability tests can reproduce on a CPU what a
rented GPU box does to a run. All are off unless their variable is set; none costs anything when off.

  MINIMIND_TUI_FAKE_OOM_AT_STEP=k        out-of-memory error at optimizer step k
  MINIMIND_TUI_FAKE_OOM_ABOVE_BATCH=N    out-of-memory error whenever a batch of more than N samples runs
                                         (also in --auto_batch_size's probe)
  MINIMIND_TUI_STOP_AT_STEP=k            stop request after step k, as a SIGINT then would
  MINIMIND_TUI_HANG_AT_STEP=k            the main thread hangs after step k (a stuck collective or kernel)
  MINIMIND_TUI_HANG_IN_SAVE=1            every checkpoint save hangs (a dead network file system)
"""
from __future__ import annotations

import os
import threading

import torch

FAKE_OOM_ENV = "MINIMIND_TUI_FAKE_OOM_AT_STEP"
FAKE_OOM_ABOVE_BATCH_ENV = "MINIMIND_TUI_FAKE_OOM_ABOVE_BATCH"
STOP_AT_ENV = "MINIMIND_TUI_STOP_AT_STEP"
HANG_AT_ENV = "MINIMIND_TUI_HANG_AT_STEP"
HANG_IN_SAVE_ENV = "MINIMIND_TUI_HANG_IN_SAVE"


def env_int(name: str) -> int:
    return int(os.environ.get(name, "0") or 0)


def fake_oom_for_batch(batch_size: int) -> None:
    limit = env_int(FAKE_OOM_ABOVE_BATCH_ENV)
    if limit and batch_size > limit:
        raise torch.OutOfMemoryError(f"simulated out of memory for batch size {batch_size} "
                                     f"({FAKE_OOM_ABOVE_BATCH_ENV}={limit})")


def hang_forever() -> None:
    """Block the calling thread; signals still run their (flag-setting) handlers, only SIGKILL ends it."""
    while True:
        threading.Event().wait(3600)
