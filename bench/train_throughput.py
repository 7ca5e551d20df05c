"""Training speed: our trainer's step against a reference-style step, side by side in one process.

The reference-style step does what MiniMind's train_full_sft.py does: every sample padded to
max_seq_len, tokenised (chat template, encode, Python loss-mask scan) in the training loop, full logits
for every position and per-token cross-entropy times the mask. Ours: tokens from the memory-mapped
cache, each batch packed into one unpadded row (the trainer's CPU default; --chunk-tokens N measures
length-sorted padded passes instead), the vocab projection only on loss-mask rows. Same seed-0 initial
weights, same file-order batches, same AdamW; the two steps alternate so machine noise hits both alike.
Reports per-step times, their ratio, real/computed tokens per second, and the loss difference at every step.

    .venv/bin/python bench/train_throughput.py --config small --steps 10
    .venv/bin/python bench/train_throughput.py --config 26m --steps 6
    .venv/bin/python bench/train_throughput.py --startup-rss 1.6   # peak RSS starting on a 1.6 GB JSONL

Needs ../shared (the reference tokenizer and sft_bench.jsonl).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "small": dict(dim=128, n_layers=2, max_seq_len=512, batch_size=16),
    "26m": dict(dim=512, n_layers=8, max_seq_len=512, batch_size=8),
}


# ---------- the reference-style data path: tokenised in the loop, padded to max_seq_len ----------
class ReferenceStyleSFT:
    def __init__(self, path: Path, tokenizer, max_length: int):
        from dataset.jsonl import JsonlFile
        self.file = JsonlFile(path)
        self.tok = tokenizer
        self.max_length = max_length
        self.bos_id = tokenizer.encode(f"{tokenizer.bos_token}assistant")
        self.eos_id = tokenizer.encode(tokenizer.eos_token)

    def _loss_mask(self, ids: list[int]) -> list[int]:
        # The reference's scan, token by token in Python.
        mask = [0] * len(ids)
        i, nb, ne = 0, len(self.bos_id), len(self.eos_id)
        while i < len(ids):
            if ids[i:i + nb] == self.bos_id:
                start = end = i + nb
                while end < len(ids):
                    if ids[end:end + ne] == self.eos_id:
                        break
                    end += 1
                for j in range(start + 1, min(end + ne + 1, self.max_length)):
                    mask[j] = 1
                i = end + ne if end < len(ids) else len(ids)
            else:
                i += 1
        return mask

    def __getitem__(self, i: int):
        import torch
        sample = json.loads(self.file.line(i))
        messages = [{"role": t.get("role") or ("user" if k % 2 == 0 else "assistant"), "content": t["content"]}
                    for k, t in enumerate(sample["conversations"])]
        ids = self.tok.encode(self.tok.apply_chat_template(messages, add_generation_prompt=False))[:self.max_length]
        ids = ids + [self.tok.pad_token_id] * (self.max_length - len(ids))
        mask = self._loss_mask(ids)
        return (torch.tensor(ids[:-1]), torch.tensor(ids[1:]), torch.tensor(mask[1:]))

    def batch(self, indices):
        import torch
        X, Y, M = zip(*(self[i] for i in indices), strict=True)
        return torch.stack(X), torch.stack(Y), torch.stack(M)


def reference_step(model, optimizer, data, indices, vocab):
    import torch
    import torch.nn.functional as F
    t0 = time.perf_counter()
    X, Y, M = data.batch(indices)
    t_data = time.perf_counter() - t0
    logits = model(X).logits                                       # (B, T, vocab) for every position
    ce = F.cross_entropy(logits.view(-1, vocab), Y.view(-1), reduction="none").view(Y.shape)
    loss = (ce * M).sum() / M.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), t_data, int(X.numel()), int((X != 0).sum())


def our_step(compute, optimizer, collate, indices):
    """One optimizer step exactly as the trainer takes it (its collator, its per-pass loss)."""
    import torch

    from minimind_tui.train.loop import samples_in
    from minimind_tui.train.stages import pass_loss
    passes = collate(indices)
    n_mask = float(sum(int(p.loss_mask.sum()) for p in passes))
    rows = sum(samples_in(p) for p in passes)
    total = 0.0
    for p in passes:
        loss = pass_loss(compute, p, n_mask, samples_in(p) / rows)
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(compute.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, sum(p.padded_tokens for p in passes), sum(p.real_tokens for p in passes)


def side_by_side(name: str, steps: int, data_path: Path, tok_dir: Path, chunk_tokens: int) -> dict:
    import torch

    from dataset.batching import epoch_batches
    from dataset.datasets import SFTDataset
    from dataset.token_cache import build, open_cache
    from minimind_tui.train.loop import compute_module, make_collator
    from model import LMConfig, MiniMindLM, Tokenizer

    cfg = CONFIGS[name]
    tok = Tokenizer.from_dir(tok_dir)
    B, L = cfg["batch_size"], cfg["max_seq_len"]

    # Our data path, as the trainer prepares it (timed: cold build, then a warm open).
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    t0 = time.perf_counter()
    ds = SFTDataset(data_path, tok, max_length=L)
    cache = build(ds, cache_dir / "c", tok.vocab_size, {})
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cache = open_cache(cache_dir / "c")
    warm_open_s = time.perf_counter() - t0
    settings = {"chunk_tokens": chunk_tokens}
    collate = make_collator(cache, settings, "cpu", tok.pad_token_id, use_moe=False)
    batches = epoch_batches(len(cache), 0, B, seed=0, shuffle=False)[:steps]

    ref_data = ReferenceStyleSFT(data_path, tok, L)
    config = LMConfig(dim=cfg["dim"], n_layers=cfg["n_layers"], vocab_size=tok.vocab_size, max_seq_len=L)
    torch.manual_seed(0)
    ref_model = MiniMindLM(config)
    torch.manual_seed(0)
    our_model = MiniMindLM(config)
    ref_weights, our_weights = ref_model.state_dict().values(), our_model.state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(ref_weights, our_weights, strict=True))
    # 5.5e-5: the SFT recipe's cosine schedule at its first steps (1.1 x 5e-5); with it the reference-style
    # side reproduces the first losses quoted in ../shared/README.md (8.880, 8.891, 8.878 on the small config).
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=5.5e-5)
    our_opt = torch.optim.AdamW(our_model.parameters(), lr=5.5e-5)
    our_compute = compute_module(our_model, settings, "cpu")

    rows = []
    for k, idx in enumerate(batches):
        # Wall time, and this process's CPU time: on a machine shared with other work the CPU time is
        # the steadier measure (another process's burst stretches wall time, not our CPU time).
        t0, c0 = time.perf_counter(), time.process_time()
        ref_loss, ref_data_s, ref_padded, ref_real = reference_step(ref_model, ref_opt, ref_data, idx, tok.vocab_size)
        t1, c1 = time.perf_counter(), time.process_time()
        our_loss, our_padded, our_real = our_step(our_compute, our_opt, collate, idx)
        t2, c2 = time.perf_counter(), time.process_time()
        rows.append(dict(step=k + 1, ref_s=t1 - t0, ref_data_s=ref_data_s, our_s=t2 - t1, ref_cpu=c1 - c0,
                         our_cpu=c2 - c1, ref_loss=ref_loss, our_loss=our_loss, ref_padded=ref_padded,
                         our_padded=our_padded, real=our_real))
        print(f"  step {k + 1}: reference {t1 - t0:.3f} s (cpu {c1 - c0:.3f}, data {ref_data_s:.3f}) loss "
              f"{ref_loss:.4f} | ours {t2 - t1:.3f} s (cpu {c2 - c1:.3f}) loss {our_loss:.4f} | ratio "
              f"{(t1 - t0) / (t2 - t1):.2f}x wall, {(c1 - c0) / (c2 - c1):.2f}x cpu", flush=True)
    timed = rows[1:] if len(rows) > 2 else rows  # step 1 carries one-off allocation costs
    ref_s = statistics.median(r["ref_s"] for r in timed)
    ref_compute_s = statistics.median(r["ref_s"] - r["ref_data_s"] for r in timed)
    our_s = statistics.median(r["our_s"] for r in timed)
    real = sum(r["real"] for r in timed)
    out = dict(
        config=name, **cfg, steps=len(rows), threads=torch.get_num_threads(), chunk_tokens=chunk_tokens,
        ref_s_per_step=round(ref_s, 4), ref_compute_s_per_step=round(ref_compute_s, 4),
        our_s_per_step=round(our_s, 4),
        speedup=round(ref_s / our_s, 2), speedup_vs_compute_only=round(ref_compute_s / our_s, 2),
        speedup_per_step=[round(r["ref_s"] / r["our_s"], 2) for r in rows],
        ref_cpu_s_per_step=round(statistics.median(r["ref_cpu"] for r in timed), 4),
        our_cpu_s_per_step=round(statistics.median(r["our_cpu"] for r in timed), 4),
        speedup_cpu_time=round(statistics.median(r["ref_cpu"] for r in timed)
                               / statistics.median(r["our_cpu"] for r in timed), 2),
        speedup_cpu_time_per_step=[round(r["ref_cpu"] / r["our_cpu"], 2) for r in rows],
        max_loss_diff=round(max(abs(r["ref_loss"] - r["our_loss"]) for r in rows), 6),
        first_losses_ref=[round(r["ref_loss"], 3) for r in rows[:3]],
        first_losses_ours=[round(r["our_loss"], 3) for r in rows[:3]],
        real_tokens_per_s_ref=round(real / sum(r["ref_s"] for r in timed), 1),
        real_tokens_per_s_ours=round(real / sum(r["our_s"] for r in timed), 1),
        computed_tokens_per_s_ref=round(sum(r["ref_padded"] for r in timed) / sum(r["ref_s"] for r in timed), 1),
        computed_tokens_per_s_ours=round(sum(r["our_padded"] for r in timed) / sum(r["our_s"] for r in timed), 1),
        padding_share_ref=round(1 - real / sum(r["ref_padded"] for r in timed), 3),
        padding_share_ours=round(1 - real / sum(r["our_padded"] for r in timed), 3),
        cache_build_s=round(cold_s, 2), cache_open_s=round(warm_open_s, 4),
    )
    import shutil
    shutil.rmtree(cache_dir, ignore_errors=True)
    return out


# ---------- start-up memory on a large JSONL ----------
def peak_rss_of(argv: list[str], env: dict, cwd: Path) -> tuple:
    """(exit status, peak RSS in MB of the trainer, seconds, seconds to its first step, output tail)."""
    t0 = time.time()
    # A fresh go-between process whose only child is the trainer, so its RUSAGE_CHILDREN peak is this run's.
    shim = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    argv = [sys.executable, "-c", shim, *argv]
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_step = None
    out_lines = []
    for line in proc.stdout:
        out_lines.append(line)
        if first_step is None and " step 1/" in line:
            first_step = time.time() - t0
    proc.wait()
    peak_kb = next(int(line.split()[1]) for line in reversed(out_lines) if line.startswith("PEAK_KB"))
    return proc.returncode, peak_kb / 1024, time.time() - t0, first_step, "".join(out_lines[-5:])


def startup_rss(size_gb: float, tok_dir: Path, data_path: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    big = work / "big_sft.jsonl"
    lines = data_path.read_bytes()
    copies = max(1, int(size_gb * 1e9 / len(lines)))
    with open(big, "wb") as f:
        for _ in range(copies):
            f.write(lines)
    size = big.stat().st_size
    env = {**os.environ, "MINIMIND_CACHE": str(work / "cache"), "MINIMIND_TUI_STOP_AT_STEP": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    argv = [sys.executable, "-m", "minimind_tui", "train", "sft", "--data_path", str(big), "--tokenizer", str(tok_dir),
            "--init", "none", "--dim", "128", "--n_layers", "2", "--batch_size", "16", "--max_seq_len", "512",
            "--out_dir", str(work / "out")]
    results = {"jsonl_bytes": size, "samples": copies * lines.count(b"\n")}
    try:
        code, peak, secs, first, tail = peak_rss_of(argv + ["--run_dir", str(work / "r1")], env, work)
        results.update(cold_exit=code, cold_peak_rss_mb=round(peak), cold_seconds=round(secs, 1),
                       cold_first_step_s=first and round(first, 1))
        if code != 0:
            print(tail)
        code, peak2, secs, first, tail = peak_rss_of(argv + ["--run_dir", str(work / "r2")], env, work)
        results.update(warm_exit=code, warm_peak_rss_mb=round(peak2), warm_seconds=round(secs, 1),
                       warm_first_step_s=first and round(first, 1))
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=[*CONFIGS, "both"], default="both")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="the trainer's --chunk_tokens (default: none, i.e. packed rows as the trainer uses on CPU)")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "sft_bench.jsonl")
    p.add_argument("--tokenizer", type=Path, default=SHARED / "minimind_tokenizer")
    p.add_argument("--startup-rss", type=float, metavar="GB", help="instead: peak RSS starting on a JSONL this big")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if not args.data.is_file() or not (args.tokenizer / "tokenizer.json").is_file():
        print(f"needs {args.data} and {args.tokenizer} (../shared)", file=sys.stderr)
        return 2
    if args.startup_rss:
        results = [startup_rss(args.startup_rss, args.tokenizer, args.data)]
    else:
        names = list(CONFIGS) if args.config == "both" else [args.config]
        results = []
        for name in names:
            print(f"{name}: {CONFIGS[name]}", flush=True)
            results.append(side_by_side(name, args.steps, args.data, args.tokenizer, args.chunk_tokens))
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
