"""Fault-injection hooks read from the environment, so reliability tests can reproduce on a CPU what a
rented GPU box does to a run. All are off unless their variable is set; none costs anything when off.

  MINIMIND_TUI_FAKE_OOM_AT_STEP=k        out-of-memory error at optimizer step k
  MINIMIND_TUI_FAKE_OOM_ABOVE_BATCH=N    out-of-memory error whenever a batch of more than N samples runs
                                         (also in --auto_batch_size's probe)
  MINIMIND_TUI_STOP_AT_STEP=k            stop request after step k, as a SIGINT then would
  MINIMIND_TUI_HANG_AT_STEP=k            the main thread hangs after step k (a stuck collective or kernel),
                                         once step k is logged and saved; k before the last step
  MINIMIND_TUI_HANG_IN_SAVE=1            every checkpoint save hangs (a dead network file system)
  MINIMIND_TUI_NAN_GRAD_AT_STEP=k        NaN in the gradient of optimizer step k (an fp16/bf16 overflow)

The loop reaches all the per-step ones through one call, `FaultHooks.before_step`.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import torch

FAKE_OOM_ENV = "MINIMIND_TUI_FAKE_OOM_AT_STEP"
FAKE_OOM_ABOVE_BATCH_ENV = "MINIMIND_TUI_FAKE_OOM_ABOVE_BATCH"
STOP_AT_ENV = "MINIMIND_TUI_STOP_AT_STEP"
HANG_AT_ENV = "MINIMIND_TUI_HANG_AT_STEP"
HANG_IN_SAVE_ENV = "MINIMIND_TUI_HANG_IN_SAVE"
NAN_GRAD_AT_ENV = "MINIMIND_TUI_NAN_GRAD_AT_STEP"


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


def hang_in_save() -> None:
    if os.environ.get(HANG_IN_SAVE_ENV):
        hang_forever()


@dataclass
class FaultHooks:
    """The per-step hooks, read once when training starts (0 = off)."""
    oom_at: int = 0
    stop_at: int = 0
    hang_at: int = 0
    nan_at: int = 0
    _poison: Any = None  # the gradient hook that puts NaN into step nan_at

    @classmethod
    def from_env(cls) -> FaultHooks:
        return cls(env_int(FAKE_OOM_ENV), env_int(STOP_AT_ENV), env_int(HANG_AT_ENV), env_int(NAN_GRAD_AT_ENV))

    def before_step(self, done: int, batch_size: int, stop, model: torch.nn.Module) -> None:
        """Called before each optimizer step, with `done` steps finished (the last one logged and saved).

        A stop requested now is seen when the coming step ends, exactly as a SIGINT during it would be:
        so "stop after step k" asks before step k runs. `>=`: a resume may start past k.
        """
        if self._poison is not None:
            self._poison.remove()
            self._poison = None
        if self.nan_at and done + 1 == self.nan_at:
            self._poison = next(model.parameters()).register_hook(lambda grad: grad * float("nan"))
        if self.hang_at and done == self.hang_at:
            hang_forever()
        if self.oom_at and done + 1 == self.oom_at:
            raise torch.OutOfMemoryError(f"simulated out of memory ({FAKE_OOM_ENV}={self.oom_at})")
        fake_oom_for_batch(batch_size)
        if self.stop_at and done + 1 >= self.stop_at:
            stop.request(f"{STOP_AT_ENV}={self.stop_at}")
