"""MiniMind's cosine schedules, over optimizer steps, with an optional linear warm-up."""
from __future__ import annotations

import math


def learning_rate(step: int, total: int, base_lr: float, warmup: int = 0, generation: str = "v1") -> float:
    """lr for optimizer step `step` (0-based) of `total`, as the generation's trainer computes it:
    v1: lr/10 + lr/2 * (1 + cos(pi * t / T)), t from 0: it starts at 1.1 * lr and ends near lr/10;
    MiniMind2 and minimind-3: lr * (0.1 + 0.45 * (1 + cos(pi * t / T))), t from 1: it starts just under lr
    and ends at lr/10.
    With warm-up, the first `warmup` steps ramp linearly up to the cosine curve's value.
    """
    total = max(total, 1)
    if generation == "v1":
        cosine = base_lr / 10 + 0.5 * base_lr * (1 + math.cos(math.pi * step / total))
    else:
        cosine = base_lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step + 1) / total)))
    if warmup > 0 and step < warmup:
        return cosine * (step + 1) / warmup
    return cosine
