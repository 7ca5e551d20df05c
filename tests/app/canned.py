"""Canned run directories for dashboard tests: what a trainer would have written, without running one."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from minimind_tui.runs import events, layout

T0 = 1_764_000_000.0  # a fixed "now" so durations and ages in snapshots never change


def make_run(root: Path, run_id: str, mode: str = "sft", steps: int = 40, total: int = 100, end: str | None = None,
             reason: str = "", heartbeat_age: float | None = None, pid: int | None = None, ckpt_at: tuple = (20,),
             log_lines: int = 5, dataset: str = "dataset/sft_mini_512.jsonl", oom: dict | None = None,
             now: float = T0) -> Path:
    """Write runs/<run_id> as the trainer would: config.json, metrics.jsonl (start, steps, ckpts, end),
    train.log, heartbeat (mtime set to now - heartbeat_age) and trainer.lock."""
    run_dir = Path(root) / "runs" / run_id
    (run_dir / layout.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    (run_dir / layout.CONFIG).write_text(json.dumps({"mode": mode, "settings": {"data_path": dataset, "epochs": 2}}))
    t = now - 10 * steps - 5
    lines = [events.encode("start", now=t, schema=1, run_id=run_id, mode=mode, pid=pid or 0, world_size=1,
                           total=total, config={"dim": 128, "n_layers": 4}, params=1_574_016)]
    for s in range(1, steps + 1):
        t += 10
        loss = 2.0 + 6.8 * math.exp(-s / 12)
        lr = 5e-5 / 10 + 5e-5 / 2 * (1 + math.cos(math.pi * s / total))
        lines.append(events.encode("step", now=t, step=s, total=total, epoch=0 if s <= total // 2 else 1,
                                   loss=round(loss, 4), lr=lr, grad_norm=1.0, tokens_per_s=12_345.0,
                                   padded_tokens_per_s=20_000.0, samples=s * 16, elapsed=10.0 * s,
                                   eta=10.0 * (total - s), mem_peak_gb=None))
        if s in ckpt_at:
            ck = layout.checkpoint_dir(run_dir, s)
            ck.mkdir(parents=True, exist_ok=True)
            (ck / layout.META_FILE).write_text(json.dumps({"step": s, "mode": mode}))
            (ck / layout.MODEL_FILE).write_bytes(b"")
            (ck / layout.COMPLETE).write_text("")
            lines.append(events.encode("ckpt", now=t, step=s, path=str(ck.relative_to(run_dir)), seconds=0.4))
    if oom:
        lines.append(events.encode("oom", now=t, **oom))
    if end:
        lines.append(events.encode("end", now=t + 1, status=end, reason=reason, step=steps))
    (run_dir / layout.METRICS).write_bytes(b"".join(lines))
    (run_dir / layout.LOG).write_text("".join(f"step {i}: loss {2 + 6.8 * math.exp(-i / 12):.4f} 你好\n"
                                              for i in range(steps - log_lines + 1, steps + 1)))
    if heartbeat_age is not None:
        hb = run_dir / layout.HEARTBEAT
        hb.write_text("")
        os.utime(hb, (now - heartbeat_age, now - heartbeat_age))
    if pid is not None:
        (run_dir / layout.LOCK).write_text(f"{pid}\n")
    # Stable order in list_runs (newest first by mtime).
    os.utime(run_dir, (now, now))
    return run_dir
