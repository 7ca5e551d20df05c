"""`doctor --smoke`: train a small model for real on each device, then generate with it.

The real trainer runs in a subprocess (`python -m minimind_tui train pretrain ...`) on generated data in a
temporary folder, for about `seconds` after its first step; then it gets SIGINT, the way the dashboard stops a
run, so it saves a checkpoint and exits. Its own events give the throughput, peak memory and save time; the
saved weights are loaded back here to measure generation speed. Nothing is left behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all

from .doctor import FAIL, OK, WARN

# Model sizes: "small" is MiniMind's 26M model at its usual SFT shape (what a GPU should be checked with);
# "tiny" keeps a CPU run to a few seconds.
SIZES = {
    "small": dict(dim=512, n_layers=8, max_seq_len=512, batch_size=32),
    "tiny": dict(dim=64, n_layers=2, max_seq_len=64, batch_size=8),
}
SETUP_TIMEOUT_S = 600.0   # tokenising, CUDA initialisation, the first step
EXIT_TIMEOUT_S = 300.0    # after SIGINT: finish the step, save, exit
GENERATE_TOKENS = 128


@dataclass
class SmokeResult:
    device: str
    status: str
    size: str
    dtype: str
    seconds: float | None = None           # trained, from the first step to the stop
    steps: int | None = None
    tokens_per_s: float | None = None      # median over the logged steps after the first
    step_s: float | None = None
    mem_peak_gb: float | None = None       # the trainer's own peak report (allocated); GPU only
    rss_gb: float | None = None            # the trainer's resident memory at its largest
    estimate_allocated_gb: float | None = None
    estimate_total_gb: float | None = None
    ckpt_seconds: float | None = None      # the checkpoint written at the stop
    gen_tokens_per_s: float | None = None
    message: str = ""


def default_devices(torch) -> list[str]:
    if torch is not None and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"]


def smoke_dtype(torch, device: str) -> str:
    if device.startswith("cuda"):
        major, _ = torch.cuda.get_device_capability(device)
        return "bfloat16" if major >= 8 else "float16"
    return "float32"


def write_data(path: Path, max_seq_len: int, samples: int) -> None:
    """Pretraining lines long enough to fill max_seq_len (the worst case the estimate plans for)."""
    from minimind_tui.demo import pretrain_lines, write_jsonl

    pieces = [r["text"] for r in pretrain_lines(samples * 4)]
    per_line = max(1, max_seq_len // 6)  # demo sentences are ~10 tokens; ample for truncation
    rows = [{"text": " ".join(pieces[(i * per_line + k) % len(pieces)] for k in range(per_line))}
            for i in range(samples)]
    write_jsonl(path, rows)


def run_smoke(device: str, seconds: float = 20.0, size: str | None = None, python: str = sys.executable,
              keep: Path | None = None) -> SmokeResult:
    import torch

    size = size or ("small" if device.startswith("cuda") else "tiny")
    cfg = SIZES[size]
    dtype = smoke_dtype(torch, device)
    result = SmokeResult(device=device, status=FAIL, size=size, dtype=dtype)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="minimind-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _train(result, work, device, dtype, cfg, seconds, python)
        if result.steps:
            _estimate(result, cfg, dtype, device)
            _generate(result, work, device, cfg)
    except Exception as e:  # a smoke test reports what broke; it never takes doctor down with it
        result.status, result.message = FAIL, f"{type(e).__name__}: {e}"
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _train(result: SmokeResult, work: Path, device: str, dtype: str, cfg: dict, seconds: float, python: str):
    from minimind_tui.demo import demo_tokenizer_dir

    data = work / "smoke.jsonl"
    write_data(data, cfg["max_seq_len"], samples=max(64, 16 * cfg["batch_size"]))
    run_dir = work / "run"
    argv = [python, "-m", "minimind_tui", "train", "pretrain", "--data_path", str(data), "--run_dir", str(run_dir),
            "--out_dir", str(work / "out"), "--init", "none", "--tokenizer", str(demo_tokenizer_dir()),
            "--dim", str(cfg["dim"]), "--n_layers", str(cfg["n_layers"]), "--max_seq_len", str(cfg["max_seq_len"]),
            "--batch_size", str(cfg["batch_size"]), "--accumulation_steps", "1", "--epochs", "100000",
            "--learning_rate", "1e-3", "--device", device, "--dtype", dtype, "--log_interval", "5",
            "--save_interval", "100000000"]
    env = {**os.environ, "MINIMIND_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    with open(work / "train.out", "wb") as out:
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        first = _wait_for_first_step(proc, run_dir)
        if first is None:
            result.message = f"the trainer stopped before its first step (exit {proc.poll()}): " + _tail(work)
            return
        deadline = first + seconds
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        stopped_at = time.time()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # saves, then exits 0, as `runs stop` does
        code = proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    events = read_all(run_dir / layout.METRICS)
    steps = [e for e in events if e.get("event") == "step"]
    later = [e for e in steps if e["step"] > 1] or steps
    ckpts = [e for e in events if e.get("event") == "ckpt"]
    result.seconds = round(stopped_at - first, 1)
    result.steps = steps[-1]["step"] if steps else 0
    result.tokens_per_s = round(statistics.median(e["tokens_per_s"] for e in later), 1) if later else None
    result.step_s = round(statistics.median(e["step_s"] for e in later), 4) if later else None
    peaks = [e.get("mem_peak_gb") for e in steps if e.get("mem_peak_gb") is not None]
    result.mem_peak_gb = max(peaks) if peaks else None
    rss = [e.get("rss_gb") for e in steps if e.get("rss_gb") is not None]
    result.rss_gb = max(rss) if rss else None
    result.ckpt_seconds = ckpts[-1].get("seconds") if ckpts else None
    if code != 0:
        result.message = f"the trainer exited with status {code}: " + _tail(work)
        return
    result.status = OK if ckpts else WARN
    result.message = "" if ckpts else "no checkpoint was saved at the stop"


def _wait_for_first_step(proc, run_dir: Path) -> float | None:
    deadline = time.time() + SETUP_TIMEOUT_S
    while time.time() < deadline and proc.poll() is None:
        if any(e.get("event") == "step" for e in read_all(run_dir / layout.METRICS)):
            return time.time()
        time.sleep(0.2)
    return None


def _tail(work: Path, lines: int = 3) -> str:
    try:
        return " | ".join((work / "train.out").read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _estimate(result: SmokeResult, cfg: dict, dtype: str, device: str) -> None:
    from minimind_tui.demo import demo_tokenizer_dir
    from minimind_tui.train.memory_plan import plan_memory
    from model import Tokenizer

    plan = plan_memory(cfg["dim"], cfg["n_layers"], cfg["batch_size"], cfg["max_seq_len"], dtype=dtype,
                       device=device, vocab=Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size)
    # The trainer reports its peak in GiB (as NVML does), the unit the plan is in.
    result.estimate_allocated_gb = round(plan.allocated_gb, 3)
    result.estimate_total_gb = round(plan.total_gb, 3)
    if result.mem_peak_gb and result.mem_peak_gb > 1.25 * result.estimate_allocated_gb and result.status == OK:
        result.status = WARN
        result.message = (f"peak memory {result.mem_peak_gb} GiB is above the estimate "
                          f"({result.estimate_allocated_gb} GiB allocated): train --dry_run underestimates here")


def _generate(result: SmokeResult, work: Path, device: str, cfg: dict) -> None:
    """Decode with the weights just saved, as `chat` would (KV cache, sampling), and time the new tokens."""
    import torch

    from model.checkpoint import load_model
    from model.generate import generate

    weights = work / "out" / layout.weights_name("pretrain", cfg["dim"], False)
    if not weights.is_file():
        return
    model = load_model(weights, device=device, max_seq_len=cfg["max_seq_len"])
    n = min(GENERATE_TOKENS, cfg["max_seq_len"] - 8)
    prompt = torch.tensor([[1, 5, 6, 7]], device=device)
    for tokens in (4, n):  # the first, short round warms up the kernels
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        out = generate(model, prompt, max_new_tokens=tokens, eos_token_id=None, seed=0)
        sync()
        elapsed = time.perf_counter() - t0
    new = out.shape[1] - prompt.shape[1]
    result.gen_tokens_per_s = round(new / max(elapsed, 1e-9), 1)


def format_smoke(results: list[SmokeResult]) -> str:
    lines = []
    for r in results:
        head = f"{r.status:<4}  smoke {r.device}: {r.size} model, {r.dtype}"
        if r.steps:
            head += (f", {r.steps} steps in {r.seconds} s: {r.tokens_per_s:.0f} tokens/s ({r.step_s * 1000:.0f} "
                     f"ms/step)" if r.tokens_per_s and r.step_s else f", {r.steps} steps")
        lines.append(head)
        details = []
        if r.mem_peak_gb is not None:
            details.append(f"peak memory {r.mem_peak_gb:.2f} GiB (estimate {r.estimate_allocated_gb:.2f} allocated, "
                           f"{r.estimate_total_gb:.2f} with CUDA context)")
        elif r.rss_gb is not None:
            details.append(f"peak RSS {r.rss_gb:.2f} GB (estimate {r.estimate_total_gb:.2f})")
        if r.ckpt_seconds is not None:
            details.append(f"checkpoint saved in {r.ckpt_seconds:.2f} s")
        if r.gen_tokens_per_s is not None:
            details.append(f"generation {r.gen_tokens_per_s:.0f} tokens/s")
        if details:
            lines.append("      " + "; ".join(details))
        if r.message:
            lines.append(f"      -> {r.message}")
    return "\n".join(lines)
