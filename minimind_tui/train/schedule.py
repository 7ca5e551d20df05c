"""MiniMind's cosine schedule, over optimizer steps, with an optional linear warm-up."""
from __future__ import annotations

import math


def learning_rate(step: int, total: int, base_lr: float, warmup: int = 0) -> float:
    """lr for optimizer step `step` (0-based) of `total`: lr/10 + lr/2 * (1 + cos(pi * t / T)).

    It starts at 1.1 * lr and ends near lr/10, as in the reference recipe. With warm-up, the first
    `warmup` steps ramp linearly up to the cosine curve's value.
    """
    total = max(total, 1)
    cosine = base_lr / 10 + 0.5 * base_lr * (1 + math.cos(math.pi * step / total))
    if warmup > 0 and step < warmup:
        return cosine * (step + 1) / warmup
    return cosine
