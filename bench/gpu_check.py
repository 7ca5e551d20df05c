"""The checks bench/gpu_check.sh runs after the gpu tests and `doctor --smoke`: what only a GPU can tell.

    .venv/bin/python bench/gpu_check.py --out DIR [--quick] [--only step,rng,...]

Sections (each writes DIR/<name>.json; DIR/gpu_check.json has them all):
  step     our SFT step (length-sorted passes, loss on mask rows) against a MiniMind-style padded step at
           batch 64 x 512, dim 512, bf16: step time, CUDA kernels per step (torch.profiler), peak allocated /
           reserved / NVML memory, and the memory plan's estimate next to the measured peak
  rng      resume of a checkpoint holding more CUDA RNG states than this process sees (saved on a bigger box)
  compile  --compile over 80 steps of varied lengths: how many times dynamo recompiled
  fp16     --dtype float16 with the loss scaler: the loss stays finite and falls
  nvml     the trainer's memory as NVML sees it against its own mem_peak_gb, and the estimate
  chat     generation tokens/s on CUDA with the weights the nvml run saved

Without a GPU every section but `step` reports itself skipped; `step` then runs a tiny CPU version, which
checks the measuring code itself. No network: the data is generated, the tokenizer is the bundled one.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTIONS = ("step", "rng", "compile", "fp16", "nvml", "chat")
GB = 1024**3  # every figure in GiB: the unit of NVML, the trainer's mem_peak_gb and the memory plan
# --plumbing: every section on the CPU with tiny sizes, to check this script's own code before GPU time is
# spent on it (the figures mean nothing then).
PLUMBING = False


def device() -> str:
    return "cpu" if PLUMBING else "cuda:0"


def pick(gpu_value, cpu_value):
    return cpu_value if PLUMBING else gpu_value


def cuda_ok() -> bool:
    import torch
    return torch.cuda.is_available()


# ---------- data and the trainer, shared by the sections ----------
def sft_rows(n: int, turns: int = 8, seed: int = 0) -> list[dict]:
    """Multi-turn conversations of varied length (some past 512 tokens): what a length-sorted step sees."""
    from minimind_tui.demo import sft_lines

    pool = [turn for row in sft_lines(n * 2, seed=seed + 1) for turn in row["conversations"]]
    pairs = [pool[i:i + 2] for i in range(0, len(pool) - 1, 2)]
    rng = random.Random(seed)
    return [{"conversations": [t for _ in range(rng.randint(1, turns)) for t in rng.choice(pairs)]}
            for _ in range(n)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    from minimind_tui.demo import write_jsonl
    write_jsonl(path, rows)
    return path


def tokenizer_dir() -> Path:
    from minimind_tui.demo import demo_tokenizer_dir
    return demo_tokenizer_dir()


def train(work: Path, name: str, mode: str, data: Path, flags: list[str], env: dict | None = None,
          timeout: float = 300, watch=None) -> dict:
    """Run the real trainer; returns its exit status, events and output. `watch(proc)` runs alongside."""
    from minimind_tui.runs import layout
    from minimind_tui.runs.reader import read_all

    run_dir = work / name
    argv = [sys.executable, "-m", "minimind_tui", "train", mode, "--data_path", str(data), "--run_dir", str(run_dir),
            "--out_dir", str(work / f"{name}-out"), "--init", "none", "--tokenizer", str(tokenizer_dir()), *flags]
    full_env = {**os.environ, "MINIMIND_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1", **(env or {})}
    t0 = time.time()
    with open(work / f"{name}.out", "wb") as out:
        proc = subprocess.Popen(argv, cwd=work, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        watcher = threading.Thread(target=watch, args=(proc,), daemon=True) if watch else None
        if watcher:
            watcher.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if watcher:
            watcher.join(timeout=5)
    events = read_all(run_dir / layout.METRICS) if (run_dir / layout.METRICS).exists() else []
    output = (work / f"{name}.out").read_text(errors="replace")
    return {"code": code, "events": events, "output": output, "seconds": round(time.time() - t0, 1),
            "run_dir": run_dir, "out_dir": work / f"{name}-out"}


def steps_of(run: dict) -> list[dict]:
    return [e for e in run["events"] if e.get("event") == "step"]


def tail(run: dict, n: int = 6) -> str:
    return "\n".join(run["output"].strip().splitlines()[-n:])


# ---------- step: ours against a MiniMind-style padded step ----------
def section_step(work: Path, quick: bool) -> dict:
    import numpy as np
    import torch

    from dataset.batching import epoch_batches
    from dataset.datasets import SFTDataset
    from dataset.token_cache import build
    from minimind_tui.train.loop import compute_module, make_collator, samples_in
    from minimind_tui.train.memory_plan import GiB, plan_memory
    from minimind_tui.train.stages import pass_loss
    from model import LMConfig, MiniMindLM, Tokenizer

    cuda = cuda_ok()
    dev = "cuda:0" if cuda else "cpu"
    B, L, dim, layers, steps = (64, 512, 512, 8, 6 if quick else 12) if cuda else (8, 64, 64, 2, 2)
    tok = Tokenizer.from_dir(tokenizer_dir())
    data = write_rows(work / "sft.jsonl", sft_rows(B * (steps + 2)))
    cache = build(SFTDataset(data, tok, max_length=L), work / "step-cache", tok.vocab_size, {})
    batches = epoch_batches(len(cache), 0, B, seed=0, shuffle=False)[:steps + 1]
    config = LMConfig(dim=dim, n_layers=layers, vocab_size=tok.vocab_size, max_seq_len=L)
    dtype = torch.bfloat16 if cuda else None
    autocast = torch.autocast("cuda", dtype=dtype) if cuda else torch.autocast("cpu", enabled=False)

    def fresh():
        torch.manual_seed(0)
        model = MiniMindLM(config).to(dev)
        return model, torch.optim.AdamW(model.parameters(), lr=5e-5, fused=cuda or None)

    def make_ours():
        """The trainer's step: its collator (length-sorted passes on CUDA, a packed row on the CPU), its loss."""
        collate = make_collator(cache, {}, dev, tok.pad_token_id, use_moe=False)
        model, opt = fresh()
        compute = compute_module(model, {}, dev)
        return lambda indices: ours(indices, collate, model, compute, opt)

    def ours(indices, collate, ours_model, compute, ours_opt):
        passes = collate(indices)
        n_mask = float(sum(int(p.loss_mask.sum()) for p in passes))
        rows = sum(samples_in(p) for p in passes)
        total = 0.0
        for p in passes:
            with autocast:
                loss = pass_loss(compute, p, n_mask, samples_in(p) / rows, device=dev)
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(ours_model.parameters(), 1.0)
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        return total, len(passes)

    pad = tok.pad_token_id

    def make_reference():
        model, opt = fresh()
        return lambda indices: reference(indices, model, opt)

    def reference(indices, ref_model, ref_opt):
        # MiniMind's train_full_sft.py: every sample padded to max_seq_len, logits for every position,
        # per-token cross-entropy times the mask.
        X = torch.full((len(indices), L - 1), pad, dtype=torch.long)
        Y, M = X.clone(), torch.zeros_like(X)
        for row, i in enumerate(indices):
            ids, mask = (np.asarray(a, dtype=np.int64) for a in cache.sample(int(i)))
            n = min(len(ids), L)
            X[row, :n - 1] = torch.from_numpy(ids[:n - 1])
            Y[row, :n - 1] = torch.from_numpy(ids[1:n])
            M[row, :n - 1] = torch.from_numpy(mask[1:n])
        X, Y, M = X.to(dev), Y.to(dev), M.to(dev)
        with autocast:
            logits = ref_model(X).logits
            ce = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), Y.view(-1),
                                                   reduction="none").view(Y.shape)
            loss = (ce * M).sum() / M.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref_model.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        return loss.detach(), 1

    out = {"device": dev, "batch": B, "seq": L, "dim": dim, "n_layers": layers, "dtype": "bfloat16" if cuda
           else "float32", "vocab": tok.vocab_size, "steps": steps}
    losses = {}
    for name, make in (("ours", make_ours), ("reference", make_reference)):
        step = make()
        step(batches[0])  # warm-up: allocator, kernels, optimizer state
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times, first_losses = [], []
        for idx in batches[1:steps + 1]:
            t0 = time.perf_counter()
            loss, passes = step(idx)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            first_losses.append(float(loss))
        losses[name] = first_losses
        entry = {"step_s": round(statistics.median(times), 4), "passes_per_step": passes}
        if cuda:
            entry.update(peak_allocated_gb=round(torch.cuda.max_memory_allocated() / GB, 3),
                         peak_reserved_gb=round(torch.cuda.max_memory_reserved() / GB, 3),
                         nvml_process_gb=nvml_process_gb(), kernels_per_step=count_kernels(step, batches[1]))
        out[name] = entry
        del step  # the model and optimizer go with it: the next side's peaks are its own
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    out["loss_max_diff"] = round(max(abs(a - b) for a, b in zip(losses["ours"], losses["reference"], strict=True)), 5)
    out["speedup"] = round(out["reference"]["step_s"] / out["ours"]["step_s"], 2)
    plan = plan_memory(dim, layers, B, L, vocab=tok.vocab_size, device=dev, dtype=out["dtype"])
    out["estimate"] = {"allocated_gb": round(plan.allocated_gb * GiB / GB, 3),
                       "total_gb": round(plan.total_gb * GiB / GB, 3)}
    if cuda:
        measured = out["ours"]["peak_allocated_gb"]
        out["estimate"]["allocated_over_measured"] = round(out["estimate"]["allocated_gb"] / measured, 2)
    else:
        out["note"] = "no CUDA GPU: a tiny CPU run that checks the measuring code; GPU figures skipped"
    return out


def count_kernels(step, indices) -> int:
    """CUDA kernels one optimizer step launches (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(indices)
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def nvml_process_gb(pid: int | None = None) -> float | None:
    from minimind_tui.gpu.nvml import NvmlMonitor

    monitor = NvmlMonitor()
    try:
        reading = monitor.read({pid or os.getpid()})
    finally:
        monitor.close()
    mems = [g.trainer_mem_gb for g in reading.gpus if g.trainer_mem_gb is not None]
    return round(sum(mems) * 1024**3 / GB, 3) if mems else None


# ---------- rng: resume a checkpoint saved with more CUDA RNG states than visible GPUs ----------
def section_rng(work: Path, quick: bool) -> dict:
    import torch

    from minimind_tui.runs import layout
    from model.checkpoint import sha256

    data = write_rows(work / "rng.jsonl", sft_rows(256))
    flags = ["--dim", pick("128", "32"), "--n_layers", "2", "--max_seq_len", pick("256", "64"), "--batch_size",
             "16", "--device", device(), "--save_interval", "1000000"]
    first = train(work, "rng", "sft", data, flags, env={"MINIMIND_TUI_STOP_AT_STEP": "3"})
    if first["code"] != 0:
        return {"error": f"first run exited {first['code']}: {tail(first)}"}
    folder = layout.complete_checkpoints(first["run_dir"])[-1]
    state_file = folder / layout.STATE_FILE
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    one = torch.get_rng_state() if PLUMBING else torch.cuda.get_rng_state(0)
    for rank_state in state["rng"]:  # as a 4-GPU box saves it (get_rng_state_all): one state per GPU
        rank_state["cuda"] = [one.clone() for _ in range(4)]
    torch.save(state, state_file)
    meta = json.loads((folder / layout.META_FILE).read_text())
    meta["sha256"][layout.STATE_FILE] = sha256(state_file)
    (folder / layout.META_FILE).write_text(json.dumps(meta, indent=2))
    argv_resume = [sys.executable, "-m", "minimind_tui", "train", "sft", "--resume", str(first["run_dir"])]
    env = {**os.environ, "MINIMIND_CACHE": str(work / "cache"), "MINIMIND_TUI_STOP_AT_STEP": "6"}
    done = subprocess.run(argv_resume, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    resumed = {"code": done.returncode, "output": done.stdout + done.stderr}
    ok = done.returncode == 0
    return {"saved_cuda_states": 4, "visible_gpus": 0 if PLUMBING else torch.cuda.device_count(),
            "resume_exit": done.returncode, "ok": ok, **({} if ok else {"error": tail(resumed)})}


# ---------- compile: recompilations over 80 steps ----------
def section_compile(work: Path, quick: bool) -> dict:
    steps = pick(40 if quick else 80, 6)
    batch = pick(16, 4)
    data = write_rows(work / "compile.jsonl", sft_rows(batch * steps + batch))
    # A 4-layer model: recompilation depends on the shapes a step sees, not the model's size; compiling
    # fewer layers keeps the check within its time.
    run = train(work, "compile", "sft", data, ["--dim", pick("256", "32"), "--n_layers", pick("4", "1"),
                                                "--max_seq_len", pick("512", "64"), "--batch_size", str(batch),
                                                "--compile", "--device", device(),
                                                "--log_interval", "10", "--save_interval", "1000000"],
                env={"TORCH_LOGS": "recompiles", "MINIMIND_TUI_STOP_AT_STEP": str(steps)}, timeout=420)
    recompiles = len(re.findall(r"Recompiling function", run["output"]))
    steps_ev = steps_of(run)
    out = {"steps": steps_ev[-1]["step"] if steps_ev else 0, "recompilations": recompiles, "exit": run["code"],
           "seconds": run["seconds"],
           "late_step_s": steps_ev[-1]["step_s"] if steps_ev else None}
    if run["code"] != 0:
        out["error"] = tail(run)
    return out


# ---------- fp16 with the loss scaler ----------
def section_fp16(work: Path, quick: bool) -> dict:
    from minimind_tui.smoke import write_data

    data = work / "fp16.jsonl"
    write_data(data, pick(256, 64), samples=16 * pick(40, 4))
    run = train(work, "fp16", "pretrain", data, ["--dim", pick("256", "32"), "--n_layers", pick("4", "1"),
                                                  "--max_seq_len", pick("256", "64"), "--batch_size", "16",
                                                  "--accumulation_steps", "1", "--learning_rate", "1e-3",
                                                  "--dtype", "float16", "--device", device(), "--log_interval",
                                                  "1"], timeout=300)
    steps = steps_of(run)
    losses = [e["loss"] for e in steps]
    nonfinite = [e for e in run["events"] if e.get("event") == "nonfinite"]
    finite = bool(losses) and all(x is not None and x == x and abs(x) != float("inf") for x in losses)
    out = {"exit": run["code"], "steps": len(steps), "first_loss": losses[0] if losses else None,
           "last_loss": losses[-1] if losses else None, "finite": finite, "nonfinite_events": len(nonfinite),
           "ok": run["code"] == 0 and finite and len(losses) > 1 and losses[-1] < losses[0]}
    if not out["ok"]:
        out["error"] = tail(run)
    return out


# ---------- nvml: the trainer's memory as NVML sees it, against its own report ----------
def section_nvml(work: Path, quick: bool) -> dict:
    from minimind_tui.gpu.nvml import NvmlMonitor
    from minimind_tui.train.memory_plan import GiB, plan_memory
    from model import Tokenizer

    batch, dim, layers, seq = pick((64, 512, 8, 512), (8, 32, 1, 64))
    data = write_rows(work / "nvml.jsonl", sft_rows(batch * pick(15 if quick else 30, 3)))
    seen: list[float] = []

    def poll(proc):
        monitor = NvmlMonitor()
        try:
            while proc.poll() is None:
                reading = monitor.read({proc.pid})
                mems = [g.trainer_mem_gb for g in reading.gpus if g.trainer_mem_gb]
                if mems:
                    seen.append(sum(mems) * 1024**3 / GB)
                time.sleep(0.25)
        finally:
            monitor.close()
    run = train(work, "nvml", "sft", data, ["--batch_size", str(batch), "--dim", str(dim), "--n_layers",
                                             str(layers), "--max_seq_len", str(seq), "--dtype", "bfloat16",
                                             "--device", device(), "--log_interval", "5"], timeout=300, watch=poll)
    steps = steps_of(run)
    peak = max((e["mem_peak_gb"] for e in steps if e.get("mem_peak_gb") is not None), default=None)
    reserved = max((e["mem_reserved_gb"] for e in steps if e.get("mem_reserved_gb") is not None), default=None)
    plan = plan_memory(dim, layers, batch, seq, vocab=Tokenizer.from_dir(tokenizer_dir()).vocab_size,
                       device=device())
    out = {"exit": run["code"], "steps": len(steps), "mem_peak_gb": peak, "mem_reserved_gb": reserved,
           "nvml_trainer_max_gb": round(max(seen), 3) if seen else None,
           "estimate_allocated_gb": round(plan.allocated_gb * GiB / GB, 3),
           "estimate_total_gb": round(plan.total_gb * GiB / GB, 3),
           "tokens_per_s": statistics.median(e["tokens_per_s"] for e in steps[1:]) if len(steps) > 1 else None}
    if seen and peak:
        out["nvml_over_peak_gb"] = round(max(seen) - peak, 3)  # context, allocator cache, fragmentation
    if run["code"] != 0:
        out["error"] = tail(run)
    return out


# ---------- chat: generation speed on CUDA ----------
def section_chat(work: Path, quick: bool) -> dict:
    import torch

    from minimind_tui.runs import layout
    from model.checkpoint import load_model
    from model.generate import generate

    weights = work / "nvml-out" / layout.weights_name("sft", pick(512, 32), False)
    if not weights.is_file():
        return {"error": "needs the nvml section's weights (run it first)"}
    model = load_model(weights, device=device(), max_seq_len=pick(512, 64))
    prompt = torch.tensor([[1, 5, 6, 7, 8]], device=device())
    sync = (lambda: None) if PLUMBING else torch.cuda.synchronize
    result = {}
    for n in (16, pick(256, 32)):  # warm-up, then the measured run
        sync()
        t0 = time.perf_counter()
        out = generate(model, prompt, max_new_tokens=n, eos_token_id=None, seed=0)
        sync()
        result = {"new_tokens": out.shape[1] - prompt.shape[1], "seconds": round(time.perf_counter() - t0, 3)}
    result["tokens_per_s"] = round(result["new_tokens"] / result["seconds"], 1)
    return result


# ---------- the run ----------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="fewer steps (the CPU test uses it)")
    p.add_argument("--only", help="comma-separated sections (default: all)")
    p.add_argument("--plumbing", action="store_true", help="every section on the CPU, tiny: checks this script")
    args = p.parse_args()
    global PLUMBING
    PLUMBING = args.plumbing
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    gpu = cuda_ok() or PLUMBING
    results = {}
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        for name in wanted:
            t0 = time.time()
            if name != "step" and not gpu:
                result = {"skipped": "no CUDA GPU"}
            else:
                try:
                    result = globals()[f"section_{name}"](work, args.quick)
                except Exception as e:
                    result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
            result["section_seconds"] = round(time.time() - t0, 1)
            results[name] = result
            (args.out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
            status = "skipped" if "skipped" in result else "ERROR" if "error" in result else "ok"
            print(f"gpu_check {name}: {status} ({result['section_seconds']} s) "
                  f"{json.dumps({k: v for k, v in result.items() if k != 'traceback'}, default=str)[:400]}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
