"""Round two, item 11: one huge JSONL line costs what max_seq_len tokens cost, not ~200 bytes of RAM per byte.

Whatever --max_seq_len was, the whole text of a line was tokenised before truncation, and the tokenizer keeps
about 130-210 bytes per byte of text (its per-token records): a 20 MB line took 2.5-4 GB. The trainer's token
cache, `data inspect` and the Dataset tab now tokenise a prefix cut where the tokens are certain to be the
first ones of the whole (model/token_prefix.py); the counts of the rest are taken a piece at a time.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from testkit import ROOT, cli_env

from dataset.masking import SampleEncoder
from dataset.preview import sample_from_raw, token_view
from minimind_tui.demo import demo_tokenizer_dir
from model import Tokenizer
from model.token_prefix import safe_cut

WORDS = (["the", "quick", "brown", "fox", "don't", "it's", "we'll", "3.14", "2026", "e\u0301", "naïve", "x" * 40]
         + list("你好世界今天天气很好我们用来测试的句子") + ["，", "。", "！", "“", "”", "《", "》", "……"]
         + ["😀", "🐱🐶", "👍🏽", "👨\u200d👩\u200d👧", "🇨🇳", "\u200b"]
         + [" ", " ", " ", "  ", "\n", "\n\n", "\t", "\u3000"]
         + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<think>", "</think>", "<|im_", "</"])


def random_text(rng: random.Random, n_words: int) -> str:
    return "".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture(scope="module")
def demo_tok():
    return Tokenizer.from_dir(demo_tokenizer_dir())


def tokenizers(request) -> list[Tokenizer]:
    found = [Tokenizer.from_dir(demo_tokenizer_dir()), request.getfixturevalue("tiny_tokenizer"),
             request.getfixturevalue("chatml_tokenizer"), request.getfixturevalue("chatml2_tokenizer")]
    shared = ROOT.parent / "shared"
    for sub in ("minimind_tokenizer", "tokenizers/gen2", "tokenizers/gen3"):
        if (shared / sub / "tokenizer.json").is_file():
            found.append(Tokenizer.from_dir(shared / sub))
    return found


def test_every_cut_splits_the_tokens_exactly(request):
    """encode(text) == encode(text[:c]) + encode(text[c:]) at every cut the rule allows, on random texts of
    English, CJK, emoji (with joiners and modifiers), marks, contractions, whitespace runs and (partial)
    special tokens, for every tokenizer at hand."""
    rng = random.Random(15)
    checked = 0
    for tok in tokenizers(request):
        rule = tok._cut_rule()
        assert rule is not None, tok.path
        for _ in range(120):
            text = random_text(rng, rng.randint(2, 120))
            whole = tok.encode(text)
            at = 2
            while (c := safe_cut(text, at, rule[1])) is not None:
                assert tok.encode(text[:c]) + tok.encode(text[c:]) == whole, (tok.path, text[:c], text[c:])
                checked += 1
                at = c + 1
    assert checked > 5_000


@pytest.mark.parametrize("max_length", [2, 7, 64])
def test_bounded_encoding_equals_whole_encoding_truncated(request, max_length):
    rng = random.Random(max_length)
    for tok in tokenizers(request):
        for _ in range(12):
            text = random_text(rng, rng.randint(1, 3000))
            for kind, obj in (("pretrain", {"text": text}),
                              ("sft", {"conversations": [{"role": "user", "content": text[:len(text) // 3]},
                                                         {"role": "assistant", "content": text}]})):
                enc = SampleEncoder(tok, kind, max_length)
                whole_ids, whole_mask = enc.finish(tok.encode(enc.text(obj)))
                ids, mask = enc.encode(obj)
                np.testing.assert_array_equal(ids, whole_ids)
                np.testing.assert_array_equal(mask, whole_mask)
                assert tok.count_tokens(text) == len(tok.encode(text))
                np.testing.assert_array_equal(tok.encode_compact(text), tok.encode(text))


def test_long_line_is_cut_and_stats_still_count_every_token(tmp_path, demo_tok):
    """A 1 MB line: the trainer tokenises a prefix of a few thousand characters; `data inspect` reports the
    same length, truncation and trained counts as tokenising it whole."""
    from dataset.jsonl import JsonlFile
    from dataset.stats import compute_stats

    rng = random.Random(7)
    text = random_text(rng, 200_000)
    enc = SampleEncoder(demo_tok, "pretrain", 64)
    head = enc.head(enc.text({"text": text}))
    assert len(head) < 64 * 43 + 100 < len(text)
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n" + json.dumps({"text": "short"}) + "\n")
    st = compute_stats(JsonlFile(path), "pretrain", demo_tok, 64)
    full = len(demo_tok.encode(text)) + 2  # bos and eos
    assert st.lengths.max == full and st.truncated == 1 and st.truncated_tokens == full - 64
    tv = token_view(sample_from_raw(JsonlFile(path).line(0), 0, "pretrain"), demo_tok, 64, max_pieces=100)
    assert tv.n_tokens == full and tv.n_kept == 64 and tv.n_truncated == full - 64


MEASURE = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from dataset.datasets import PretrainDataset, SFTDataset
from dataset.jsonl import JsonlFile
from dataset.stats import compute_stats
from dataset.token_cache import build
from minimind_tui.demo import demo_tokenizer_dir
from model import Tokenizer

path, what = Path(sys.argv[2]), sys.argv[3]
tok = Tokenizer.from_dir(demo_tokenizer_dir())
tok.head("warm up", 512)
jsonl = JsonlFile(path)


def rss_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])


with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current size: imports before this do not count
base = rss_kb("VmRSS:")
kind = "pretrain" if path.name.startswith("text") else "sft"
if what == "stats":  # data inspect, the Dataset tab's statistics
    compute_stats(jsonl, kind, tok, 512)
elif what == "view":  # data inspect --line, the Dataset tab's sample view
    from dataset.preview import sample_from_raw, token_view
    token_view(sample_from_raw(jsonl.line(0), 0, kind), tok, 512, max_pieces=2000)
else:  # the trainer's token cache
    cls = PretrainDataset if what == "pretrain" else SFTDataset
    cache = build(cls(path, tok, 512, jsonl=jsonl), path.parent / f"cache-{what}", tok.vocab_size, {}, workers=1)
    assert max(cache.lengths) <= 512
print(json.dumps({"peak_mb": (rss_kb("VmHWM:") - base) / 1024}))
"""


def peak_growth_mb(path: Path, what: str) -> float:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), str(path), what], capture_output=True,
                         text=True, env=cli_env({"TOKENIZERS_PARALLELISM": "false"}), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to measure peak RSS")
def test_a_20_mb_line_costs_little_memory(tmp_path, measured):
    """Peak RSS growth of the token cache build (the trainer's path) for a 20 MB pretraining line and a 20 MB
    SFT reply at max_seq_len 512, in a fresh process. Tokenising them whole took 2.5-4 GB."""
    rng = random.Random(20)
    words = [w for w in WORDS if not w.startswith("<")]
    text = "".join(rng.choice(words) for _ in range(60_000))
    while len(text.encode()) < 20_000_000:
        text += text
    text = text.encode()[:20_000_000].decode(errors="ignore")
    pre = tmp_path / "text.jsonl"  # the name tells the child the kind
    pre.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n" + json.dumps({"text": "short"}) + "\n")
    sft = tmp_path / "conv.jsonl"
    sft.write_text(json.dumps({"conversations": [{"role": "user", "content": "summarise:"},
                                                 {"role": "assistant", "content": text}]}, ensure_ascii=False) + "\n")
    del text
    peaks = {f"{what} ({path.stem})": peak_growth_mb(path, what)
             for path, what in ((pre, "pretrain"), (sft, "sft"), (pre, "stats"), (sft, "view"))}
    measured["20 MB line at max_seq_len 512"] = "peak RSS growth: " + ", ".join(
        f"{name} {mb:.0f} MB" for name, mb in peaks.items())
    # The line itself is held a few times over as bytes and str (UTF-8 and up to 4 bytes a character), and
    # the sample view keeps every id (4 bytes each, 16.7 M of them): generous, but far below the gigabytes
    # of tokenising it whole.
    limits = {"pretrain": 300, "sft": 300, "stats": 400, "view": 600}
    assert all(mb < limits[name.split()[0]] for name, mb in peaks.items()), peaks
