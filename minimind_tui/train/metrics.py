"""Turns the loop's raw counters into the `step` event. The loop only counts; this module does the
arithmetic (rates over the logging window, ETA, memory), in one place."""
from __future__ import annotations

import time

import psutil
import torch


class StepMeter:
    def __init__(self, total: int, start_step: int = 0, clock=time.time):
        self.total = total
        self.clock = clock
        self.t_start = clock()
        self.steps_at_start = start_step
        self._window_t = self.t_start
        self._window_steps = 0
        self._real = 0
        self._padded = 0
        self._samples = 0

    def count(self, real_tokens: int, padded_tokens: int, samples: int) -> None:
        self._window_steps += 1
        self._real += real_tokens
        self._padded += padded_tokens
        self._samples += samples

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` of other work (an evaluation) out of the current window's rates."""
        self._window_t += seconds

    def window(self) -> list[float]:
        """This process's counts since the last event: real tokens, computed tokens, samples."""
        return [self._real, self._padded, self._samples]

    def event(self, step: int, epoch: int, loss: float, lr: float, grad_norm: float, device,
              totals: list[float] | None = None) -> dict:
        """Fields of the `step` event for optimizer step `step` and epoch `epoch` (both counted from 1, as in
        metrics.jsonl); resets the window. `totals`:
        window() summed over all ranks (default: this process's own)."""
        real, padded, samples = totals if totals is not None else self.window()
        now = self.clock()
        window = max(now - self._window_t, 1e-9)
        done_here = step - self.steps_at_start
        elapsed = now - self.t_start
        eta = elapsed / done_here * (self.total - step) if done_here > 0 else None
        fields = dict(step=step, total=self.total, epoch=epoch, loss=round(loss, 6), lr=lr,
                      grad_norm=round(grad_norm, 6) if grad_norm == grad_norm else None,
                      tokens_per_s=round(real / window, 1), padded_tokens_per_s=round(padded / window, 1),
                      step_s=round(window / max(self._window_steps, 1), 4), samples=int(samples),
                      elapsed=round(elapsed, 3), eta=round(eta, 1) if eta is not None else None,
                      **memory_peaks(device), rss_gb=round(psutil.Process().memory_info().rss / 1e9, 3))
        self._window_t, self._window_steps, self._real, self._padded, self._samples = now, 0, 0, 0, 0
        return fields


GIB = 1 << 30  # NVML and nvidia-smi count memory in GiB


def peak_allocated_gib(device) -> float | None:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated(device) / GIB, 3)
    return None


def memory_peaks(device) -> dict:
    """Peak CUDA memory since the previous call, in GiB: allocated by tensors (mem_peak_gb) and reserved
    by the caching allocator (mem_reserved_gb, what NVML sees of the process, less the CUDA context).
    The peaks are reset, so each step event covers its own reporting interval."""
    if not (str(device).startswith("cuda") and torch.cuda.is_available()):
        return {"mem_peak_gb": None, "mem_reserved_gb": None}
    peaks = {"mem_peak_gb": peak_allocated_gib(device),
             "mem_reserved_gb": round(torch.cuda.max_memory_reserved(device) / GIB, 3)}
    torch.cuda.reset_peak_memory_stats(device)
    return peaks


def format_line(f: dict) -> str:
    eta = f"{f['eta'] / 60:.1f} min" if f.get("eta") is not None else "?"
    return (f"epoch {f['epoch']} step {f['step']}/{f['total']} loss {f['loss']:.4f} lr {f['lr']:.3g} "
            f"grad_norm {f['grad_norm'] if f['grad_norm'] is not None else 'nan'} "
            f"{f['tokens_per_s']:.0f} tok/s ({f['padded_tokens_per_s']:.0f} computed) eta {eta}")
