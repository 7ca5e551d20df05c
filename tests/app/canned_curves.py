"""Canned runs with realistic curves for the chart tests and the docs captures: a noisy loss with its opening
drop, warm-up and cosine lr, grad-norm spikes, throughput and memory, and optionally a resume from an earlier
checkpoint (the steps after it replayed). Deterministic: the "noise" is a fixed function of the step."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from canned import T0

from minimind_tui.runs import events, layout


def _noise(step: int, seed: int) -> float:
    return math.sin(step * 12.9898 + seed * 78.233) * 0.5 + math.sin(step * 4.1414 + seed) * 0.5


def step_fields(step: int, total: int, lr: float, batch: int, seed: int) -> dict:
    warmup = max(total // 20, 1)
    rate = lr * step / warmup if step <= warmup else lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup)
                                                                                         / (total - warmup))))
    speed = 1 + 2 * lr / 1e-3  # a larger lr learns faster in this toy: the runs' curves differ
    loss = 2.1 + 6.7 * math.exp(-step * speed / 25) + 0.35 * (1 - step / total) + 0.06 * _noise(step, seed)
    grad = 0.6 + 2.5 * math.exp(-step / 30) + 0.1 * _noise(step, seed + 1) + (3.0 if step % 97 == 0 else 0.0)
    tokens_per_s = 2_000.0 * batch / 16 * (1 + 0.05 * _noise(step, seed + 2)) * (0.4 if step <= 2 else 1.0)
    step_s = batch * 128 / tokens_per_s
    return dict(step=step, total=total, epoch=0, loss=round(loss, 6), lr=rate, grad_norm=round(grad, 6),
                tokens_per_s=round(tokens_per_s, 1), padded_tokens_per_s=round(tokens_per_s * 1.1, 1),
                step_s=round(step_s, 4), samples=batch, elapsed=round(step * step_s, 3), eta=None,
                mem_peak_gb=None, rss_gb=round(0.4 + 0.1 * step / total, 3))


def write_curve_run(root: Path, run_id: str, steps: int = 400, total: int = 400, lr: float = 5e-4,
                    batch: int = 16, seed: int = 0, resume: tuple[int, int] | None = None, end: str | None = "done",
                    live: bool = False, now: float = T0, eval_every: int | None = None) -> Path:
    """runs/<run_id> with `steps` logged steps. resume=(reached, back_to): the first session got to step
    `reached`, then the run was resumed from its checkpoint at `back_to` and replayed from there. eval_every:
    an `eval` event (a validation loss a little above the training loss, without its noise) every N steps."""
    run_dir = Path(root) / "runs" / run_id
    (run_dir / layout.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    settings = {"mode": "pretrain", "data_path": "dataset/demo_pretrain.jsonl", "learning_rate": lr,
                "batch_size": batch, "epochs": 1, "max_seq_len": 128, "seed": 1337 + seed, "dim": 128,
                "n_layers": 4, "run_dir": f"runs/{run_id}"}
    (run_dir / layout.CONFIG).write_text(json.dumps({"schema": 1, "mode": "pretrain", "settings": settings,
                                                     "model_config": {"dim": 128, "n_layers": 4},
                                                     "world_size": 1, "params": 965_120, "created": now}))
    t = now - 2 * steps - 60
    start = dict(schema=1, run_id=run_id, mode="pretrain", pid=0, world_size=1, total=total,
                 config={"dim": 128, "n_layers": 4}, params=965_120, resumed_from=None)
    lines = [events.encode("start", now=t, **start)]
    sessions = [(1, steps)] if resume is None else [(1, resume[0]), (resume[1] + 1, steps)]
    for i, (first, last) in enumerate(sessions):
        if i:
            lines.append(events.encode("end", now=t, status="stopped", reason="SIGINT", step=sessions[0][1]))
            lines.append(events.encode("start", now=t + 5, **{**start, "resumed_from": resume[1]}))
        for s in range(first, last + 1):
            t += 2
            fields = step_fields(s, total, lr, batch, seed + i)
            lines.append(events.encode("step", now=t, **fields))
            if eval_every and s % eval_every == 0:
                val = fields["loss"] - 0.06 * _noise(s, seed + i) + 0.12
                lines.append(events.encode("eval", now=t, step=s, loss=round(val, 6), samples=64, seconds=0.5))
    if end and not live:
        lines.append(events.encode("end", now=t + 1, status=end, reason="", step=steps))
    (run_dir / layout.METRICS).write_bytes(b"".join(lines))
    (run_dir / layout.LOG).write_text(f"step {steps}/{total}\n")
    if live:
        hb = run_dir / layout.HEARTBEAT
        hb.write_text("")
        os.utime(hb, (now - 1, now - 1))
        (run_dir / layout.LOCK).write_text(f"{os.getpid()}\n")
    os.utime(run_dir, (now, now))
    return run_dir
