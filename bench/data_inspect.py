"""Dataset inspection on a multi-GB JSONL file: first-page latency, index build, random access, statistics
speed and peak memory.

    .venv/bin/python bench/data_inspect.py              # generates a 2 GB SFT file in /tmp, deletes it after
    .venv/bin/python bench/data_inspect.py --size-gb 0.5 --keep

The file repeats ../shared/data/sft_bench.jsonl (or, without ../shared, synthetic conversations) with a
running id so no two lines are equal. Each measurement runs in a fresh subprocess so its peak RSS
(VmHWM) belongs to that measurement alone; the baselines are the same imports without touching the
file. The file was just written, so it is in the page cache: the figures are warm-cache ones.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_BENCH = ROOT.parent / "shared" / "data" / "sft_bench.jsonl"
REF_TOKENIZER = ROOT.parent / "shared" / "minimind_tokenizer"


def generate(path: Path, size: int) -> int:
    if SHARED_BENCH.is_file():
        base = [json.loads(line) for line in SHARED_BENCH.read_text(encoding="utf-8").splitlines() if line]
    else:
        base = [{"conversations": [{"role": "user", "content": f"问题 {i}：{'天气' * (i % 50)}"},
                                   {"role": "assistant", "content": f"回答 {i} 🐱 " + "好的。" * (i % 80)}]}
                for i in range(2000)]
    written, n = 0, 0
    with open(path, "wb", buffering=16 << 20) as f:
        while written < size:
            obj = dict(base[n % len(base)], id=n)
            line = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
            f.write(line)
            written += len(line)
            n += 1
    return n


def peak_mb() -> float:
    """Peak RSS of this process image. VmHWM starts afresh at exec; ru_maxrss would carry over the
    parent's peak from before the fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- child measurements (each in its own process) -------------------------------------------------------
def child_baseline(path: str) -> dict:
    import textual.app  # noqa: F401  (what the app-side children import)

    from dataset.jsonl import JsonlFile  # noqa: F401
    from dataset.preview import load_tokenizer
    load_tokenizer()
    return {"peak_mb": peak_mb()}


def child_baseline_core(path: str) -> dict:
    from dataset.jsonl import JsonlFile  # noqa: F401  (what the index and statistics children import)
    from dataset.stats import compute_stats  # noqa: F401
    return {"peak_mb": peak_mb()}


def child_app_first_page(path: str) -> dict:
    """The real DatasetTab in a headless app: time to the first sample on screen and to the index."""
    import asyncio

    from textual.app import App

    from minimind_tui.app.widgets.dataset_tab import DatasetTab

    class Host(App):
        def compose(self):
            yield DatasetTab(ROOT)

    out = {}

    async def run():
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            tab = app.query_one(DatasetTab)
            await pilot.pause()
            t0 = time.perf_counter()
            tab.open_file(path)
            while tab.sample is None:
                await pilot.pause(0.001)
            out["first_page_s"] = time.perf_counter() - t0
            out["indexed_at_first_page"] = tab.jsonl is not None
            while tab.jsonl is None:
                await pilot.pause(0.01)
            out["index_ready_s"] = time.perf_counter() - t0
            out["lines"] = len(tab.jsonl)
            t1 = time.perf_counter()
            tab.go_to_line(len(tab.jsonl))  # the last line, through the index
            await pilot.pause()
            out["jump_to_last_s"] = time.perf_counter() - t1
    asyncio.run(run())
    out["peak_mb"] = peak_mb()
    return out


def child_index(path: str) -> dict:
    import random

    from dataset.jsonl import JsonlFile
    from dataset.preview import sample_from_raw

    t0 = time.perf_counter()
    j = JsonlFile(path, use_cache=False)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    JsonlFile(path)  # writes the cache
    t0 = time.perf_counter()
    JsonlFile(path)  # reads it
    cached = time.perf_counter() - t0
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(1000):
        i = rng.randrange(len(j))
        sample_from_raw(j.line(i), i, "sft")
    return {"index_build_s": build, "index_cached_s": cached,
            "random_sample_ms": (time.perf_counter() - t0) / 1000 * 1e3,
            "lines": len(j), "peak_mb": peak_mb()}


def child_stats_no_tokens(path: str) -> dict:
    from dataset.jsonl import JsonlFile
    from dataset.stats import compute_stats

    j = JsonlFile(path)
    t0 = time.perf_counter()
    st = compute_stats(j, "sft")
    return {"seconds": time.perf_counter() - t0, "lines": st.lines, "duplicates": st.duplicates,
            "peak_mb": peak_mb()}


def child_stats_tokens(path: str) -> dict:
    """Full statistics (tokenize, mask) over the first 20,000 lines: the rate that sets how long a file takes."""
    from dataset.jsonl import JsonlFile
    from dataset.preview import load_tokenizer
    from dataset.stats import compute_stats

    tok = load_tokenizer(REF_TOKENIZER if (REF_TOKENIZER / "tokenizer.json").is_file() else None)
    part = Path(path).with_name("first_20000.jsonl")
    with open(path, "rb") as src, open(part, "wb") as dst:
        for _, line in zip(range(20_000), src, strict=False):
            dst.write(line)
    j = JsonlFile(part)
    t0 = time.perf_counter()
    st = compute_stats(j, "sft", tok, 512)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "lines": st.lines, "lines_per_s": st.lines / secs, "tokenizer": st.tokenizer,
            "peak_mb": peak_mb()}


CHILDREN = {f.__name__[6:]: f for f in (child_baseline, child_baseline_core, child_app_first_page, child_index,
                                        child_stats_no_tokens, child_stats_tokens)}


def run_child(name: str, path: Path, cache: str) -> dict:
    env = dict(os.environ, MINIMIND_CACHE=cache, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--child", name, str(path)], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](args.child[1])))
        return
    tmp = Path(tempfile.mkdtemp(prefix="minimind_data_bench_"))
    path = tmp / "big_sft.jsonl"
    try:
        t0 = time.perf_counter()
        n = generate(path, int(args.size_gb * (1 << 30)))
        size = path.stat().st_size
        print(f"generated {size / (1 << 30):.2f} GiB, {n:,} lines in {time.perf_counter() - t0:.0f} s", flush=True)
        results = {"size_gib": size / (1 << 30), "lines": n}
        for name in ("baseline", "baseline_core", "app_first_page", "index", "stats_no_tokens", "stats_tokens"):
            cache = str(tmp / f"cache_{name}")  # an empty index cache for each: nothing is pre-indexed
            results[name] = run_child(name, path, cache)
            print(name, json.dumps(results[name]), flush=True)
        print(json.dumps(results))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
