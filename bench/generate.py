"""Generation speed: our engine against a MiniMind-style baseline, side by side on the same model.

    .venv/bin/python bench/generate.py                 # dim 512, 8 layers, 100-token prompt, 512 new tokens
    .venv/bin/python bench/generate.py --device cuda --new 256

The baseline reproduces what MiniMind's reference `generate` does per token: the cache is a list of
(k, v) tuples re-concatenated by the model at every step, logits are computed for every prompt position,
the repetition penalty indexes a Python set rebuilt from the whole sequence, and the sequence tensor is
re-concatenated. Both sides sample with the same settings from random weights (eos disabled, so both
produce exactly --new tokens). Runs alternate (baseline, ours, baseline, ...) so machine load hits both.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import LMConfig, MiniMindLM  # noqa: E402
from model.generate import generate  # noqa: E402

REFERENCE_TOKENS_PER_S = 62.0  # ../shared/README.md: MiniMind's own generate, dim 512/8 layers, 2-core CPU


@torch.inference_mode()
def baseline_generate(model, ids, new_tokens, temperature, top_p, rp, seed, sync):
    """Yield-free MiniMind-style loop; returns (seconds to first token, total seconds)."""
    torch.manual_seed(seed)
    start = ids.shape[1]
    past = None
    t0 = time.perf_counter()
    first = None
    while ids.shape[1] < start + new_tokens:
        if past is None:
            out = model(ids, use_cache=True)
        else:
            out = model(ids[:, -1:], past_key_values=past, use_cache=True, start_pos=ids.shape[1] - 1)
        logits, past = out.logits[:, -1, :], out.past_key_values
        logits[:, list(set(ids.tolist()[0]))] /= rp
        logits /= temperature + 1e-9
        if top_p < 1.0:
            sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
            cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
            remove = cum > top_p
            remove[:, 1:] = remove[:, :-1].clone()
            remove[:, 0] = False
            logits[remove.scatter(1, sorted_idx, remove)] = -float("inf")
        nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
        ids = torch.cat((ids, nxt), dim=1)
        nxt.item()  # the reference's stream hands each token to the caller: one host sync per token
        if first is None:
            sync()
            first = time.perf_counter() - t0
    sync()
    return first, time.perf_counter() - t0


def ours_generate(model, ids, new_tokens, temperature, top_p, rp, seed, sync, int8=False):
    t0 = time.perf_counter()
    first = None
    n = 0
    for _ in generate(model, ids, max_new_tokens=new_tokens, temperature=temperature, top_p=top_p,
                      repetition_penalty=rp, eos_token_id=None, stream=True, seed=seed, int8=int8):
        n += 1
        if first is None:
            first = time.perf_counter() - t0
    sync()
    assert n == new_tokens, n
    return first, time.perf_counter() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--n_layers", type=int, default=8)
    p.add_argument("--use_moe", type=int, default=0)
    p.add_argument("--prompt", type=int, default=100, help="prompt length in tokens")
    p.add_argument("--new", type=int, default=512, help="new tokens per run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (after one warm-up each)")
    p.add_argument("--temperature", type=float, default=0.85)
    p.add_argument("--top_p", type=float, default=0.85)
    p.add_argument("--repetition_penalty", type=float, default=1.05)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--skip_baseline", action="store_true")
    p.add_argument("--int8", action="store_true", help="also time our int8 weight-only decoding (CPU)")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    config = LMConfig(dim=args.dim, n_layers=args.n_layers, use_moe=bool(args.use_moe),
                      max_seq_len=max(1024, args.prompt + args.new))
    model = MiniMindLM(config).eval().to(device=args.device, dtype=getattr(torch, args.dtype))
    ids = torch.randint(3, config.vocab_size, (1, args.prompt), device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sides = {"ours": ours_generate} if args.skip_baseline else {"baseline": baseline_generate, "ours": ours_generate}
    if args.int8:
        sides["ours int8"] = lambda *a, **k: ours_generate(*a, **k, int8=True)
    print(f"model: dim {args.dim}, {args.n_layers} layers{' MoE' if args.use_moe else ''}, "
          f"{model.num_parameters() / 1e6:.1f}M params, {args.dtype} on {args.device}, "
          f"{torch.get_num_threads()} CPU threads; prompt {args.prompt}, {args.new} new tokens")
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    for rep in range(args.repeats + 1):
        for name, fn in sides.items():
            first, total = fn(model, ids, args.new, args.temperature, args.top_p, args.repetition_penalty,
                              seed=rep, sync=sync)
            if rep > 0:  # the first round warms up allocators and kernels
                results[name].append((first, total))
    speeds = {}
    for name, runs in results.items():
        tps = statistics.median(args.new / total for _, total in runs)
        ttft = statistics.median(first for first, _ in runs)
        speeds[name] = tps
        print(f"{name:>9}: {tps:7.1f} tokens/s   first token {ttft * 1000:6.1f} ms   "
              f"(median of {len(runs)}: {', '.join(f'{args.new / t:.0f}' for _, t in runs)} tok/s)")
    for name in [n for n in speeds if n != "baseline"]:
        if "baseline" in speeds:
            print(f"ratio {name}/baseline: {speeds[name] / speeds['baseline']:.2f}x")
        print(f"ratio {name}/reference figure ({REFERENCE_TOKENS_PER_S:.0f} tok/s): "
              f"{speeds[name] / REFERENCE_TOKENS_PER_S:.2f}x")


if __name__ == "__main__":
    main()
