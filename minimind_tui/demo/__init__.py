"""A deterministic bilingual demo corpus a tiny model visibly learns on a CPU in minutes.

Pretraining text states every fact (capitals, colours, opposites) and single-digit sums in several
phrasings. SFT teaches the question-and-answer form on all facts and on most sums; the held-out sums
are never asked during SFT, so answering them shows the model learned the pattern, not the replies.
(A demo-size model trained for minutes does not reliably transfer a fact seen only in pretraining
into the chat form, so capitals are not held out.)
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from dataset.atomic import write_atomic
from dataset.tokenizer_dir import DEMO_TOKENIZER

from .facts import CAPITALS, COLOURS, OPPOSITES

SEED = 20251128
HELD_OUT_SUMS = {(2, 7), (4, 4), (6, 3), (8, 1), (5, 9), (1, 8), (3, 6), (7, 5), (9, 2), (0, 6)}
PRETRAIN_FILE = "demo_pretrain.jsonl"
SFT_FILE = "demo_sft.jsonl"


def _sum_sentences(a: int, b: int) -> list[str]:
    s = a + b
    return [f"{a} 加 {b} 等于 {s}。", f"{a} plus {b} equals {s}.", f"{a} + {b} = {s}"]


def _fact_sentences() -> list[str]:
    out = []
    for czh, cen, kzh, ken in CAPITALS:
        out += [f"{czh}的首都是{kzh}。", f"The capital of {cen} is {ken}.",
                f"{kzh}是{czh}的首都。", f"{ken} is the capital of {cen}."]
    for tzh, ten, col_zh, col_en in COLOURS:
        out += [f"{tzh}是{col_zh}的。", f"The colour of {ten} is {col_en}."]
    for wzh, wen, ozh, oen in OPPOSITES:
        out += [f"{wzh}的反义词是{ozh}。", f"The opposite of {wen} is {oen}."]
    for a in range(10):
        for b in range(10):
            out += _sum_sentences(a, b)
    return out


def pretrain_lines(n: int = 6000, seed: int = SEED) -> list[dict]:
    """Each line strings together a few facts, so the model sees them in varied contexts."""
    rng = random.Random(seed)
    facts = _fact_sentences()
    lines = []
    for _ in range(n):
        k = rng.randint(2, 5)
        parts = rng.sample(facts, k)
        sep = "" if all(p.endswith("。") for p in parts) else " "
        lines.append({"text": sep.join(parts)})
    return lines


def _capital_qa(czh, cen, kzh, ken, rng) -> tuple[str, str]:
    if rng.random() < 0.5:
        return rng.choice([f"{czh}的首都是哪里？", f"{czh}的首都是什么？"]), f"{czh}的首都是{kzh}。"
    return rng.choice([f"What is the capital of {cen}?", f"Which city is the capital of {cen}?"]), \
        f"The capital of {cen} is {ken}."


def _sum_qa(a, b, rng) -> tuple[str, str]:
    if rng.random() < 0.5:
        return f"{a} 加 {b} 等于多少？", f"{a} 加 {b} 等于 {a + b}。"
    return f"What is {a} plus {b}?", f"{a} plus {b} equals {a + b}."


def _qa_pool(rng) -> list:
    pool = []
    for row in CAPITALS:
        pool.append(lambda r=row: _capital_qa(*r, rng))
    for a in range(10):
        for b in range(10):
            if (a, b) not in HELD_OUT_SUMS:
                pool.append(lambda a=a, b=b: _sum_qa(a, b, rng))
    for tzh, ten, czh, cen in COLOURS:
        pool.append(lambda t=(tzh, ten, czh, cen): rng.choice([
            (f"{t[0]}是什么颜色的？", f"{t[0]}是{t[2]}的。"),
            (f"What colour is {t[1]}?", f"The colour of {t[1]} is {t[3]}.")]))
    for wzh, wen, ozh, oen in OPPOSITES:
        pool.append(lambda w=(wzh, wen, ozh, oen): rng.choice([
            (f"{w[0]}的反义词是什么？", f"{w[0]}的反义词是{w[2]}。"),
            (f"What is the opposite of {w[1]}?", f"The opposite of {w[1]} is {w[3]}.")]))
    pool.append(lambda: rng.choice([("你好", "你好！我是 MiniMind，有什么可以帮你的吗？"),
                                    ("Hello", "Hello! I am MiniMind. How can I help you?"),
                                    ("你是谁？", "我是 MiniMind，一个很小的语言模型。"),
                                    ("Who are you?", "I am MiniMind, a very small language model.")]))
    return pool


def sft_lines(n: int = 4000, seed: int = SEED) -> list[dict]:
    """One to three turns each; every reply is checkable."""
    rng = random.Random(seed + 1)
    pool = _qa_pool(rng)
    lines = []
    for _ in range(n):
        conv = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            q, a = rng.choice(pool)()
            conv += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        lines.append({"conversations": conv})
    return lines


# ----- after SFT: a LoRA adapter that gives the model a new name, and DPO towards concise answers -----
LORA_FILE = "demo_lora.jsonl"
DPO_FILE = "demo_dpo.jsonl"
IDENTITY = "Nova"  # a name the SFT data never uses (it says MiniMind)
IDENTITY_QUESTIONS = ["Who are you?", "What is your name?", "What should I call you?", "Introduce yourself.",
                      "你是谁？", "你叫什么名字？", "我该怎么称呼你？", "介绍一下你自己。"]
HELD_OUT_IDENTITY = ["Tell me your name.", "What are you called?", "你的名字是什么？", "请问你是谁？"]


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def identity_reply(question: str) -> str:
    return f"我是 {IDENTITY}，一个很小的语言模型。" if _is_chinese(question) else \
        f"I am {IDENTITY}, a very small language model."


def lora_lines(n_identity: int = 400, n_other: int = 200, seed: int = SEED) -> list[dict]:
    """The LoRA data: the new identity on the training phrasings, mixed with ordinary demo conversations so the
    adapter changes who the model says it is and little else. HELD_OUT_IDENTITY never appears."""
    rng = random.Random(seed + 2)
    rows = [{"conversations": [{"role": "user", "content": q}, {"role": "assistant", "content": identity_reply(q)}]}
            for q in (rng.choice(IDENTITY_QUESTIONS) for _ in range(n_identity))]
    rows += sft_lines(n_other, seed=seed + 3)
    rng.shuffle(rows)
    return rows


def _sum_pair(a: int, b: int, question: str) -> dict:
    """Preferred: the concise `a + b = s` of the pretraining text; rejected: SFT's sentence."""
    user = {"role": "user", "content": question}
    verbose = f"{a} 加 {b} 等于 {a + b}。" if _is_chinese(question) else f"{a} plus {b} equals {a + b}."
    return {"chosen": [user, {"role": "assistant", "content": f"{a} + {b} = {a + b}"}],
            "rejected": [user, {"role": "assistant", "content": verbose}]}


def dpo_pairs(held_out: bool = False) -> list[dict]:
    """Preference pairs on the sums SFT taught (held_out=False), or on HELD_OUT_SUMS, which DPO never sees: the
    share of those where the chosen reply is more likely than the rejected one measures what DPO changed."""
    sums = sorted(HELD_OUT_SUMS) if held_out else [(a, b) for a in range(10) for b in range(10)
                                                    if (a, b) not in HELD_OUT_SUMS]
    return [_sum_pair(a, b, q) for a, b in sums for q in (f"What is {a} plus {b}?", f"{a} 加 {b} 等于多少？")]


def ensure_stage_data(root=".") -> tuple[Path, Path]:
    """The LoRA and DPO demo files under <root>/dataset/, written once."""
    lora, dpo = _ensure(root, {LORA_FILE: lora_lines, DPO_FILE: dpo_pairs})
    return lora, dpo


def held_out_questions() -> list[tuple[str, str]]:
    """(question, expected answer substring) never asked during SFT."""
    out = []
    for a, b in sorted(HELD_OUT_SUMS):
        out += [(f"{a} 加 {b} 等于多少？", str(a + b)), (f"What is {a} plus {b}?", str(a + b))]
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    # Two writers at once (the dashboard scans from two threads at start-up) each write a temporary file of
    # their own and rename a whole file.
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def ensure_demo_data(root=".") -> tuple[Path, Path]:
    """Write the demo files under <root>/dataset/ once; later calls reuse them."""
    pre, sft = _ensure(root, {PRETRAIN_FILE: pretrain_lines, SFT_FILE: sft_lines})
    return pre, sft


def _ensure(root, files: dict) -> list[Path]:
    """<root>/dataset/NAME for each NAME -> rows(), written once."""
    folder = Path(root) / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        if not (folder / name).is_file():
            write_jsonl(folder / name, rows())
    return [folder / name for name in files]


def demo_tokenizer_dir() -> Path:
    """The small tokenizer shipped with the package, trained on the demo corpus by `tokenizer train`."""
    return DEMO_TOKENIZER


# The demo recipe (train flags). Measured on a 2-core CPU: pretraining ~80 s, SFT ~90 s, after which the
# model answers all 20 held-out sums correctly with greedy decoding (bench/RESULTS.md).
PRETRAIN_FLAGS = ["--preset", "demo", "--max_seq_len", "128", "--batch_size", "32", "--epochs", "3",
                  "--learning_rate", "2e-3", "--accumulation_steps", "1"]
SFT_FLAGS = ["--preset", "demo", "--max_seq_len", "128", "--batch_size", "32", "--epochs", "2",
             "--learning_rate", "1e-3"]
# LoRA on the SFT weights (~60 s on a 2-core CPU): the held-out identity questions get the new name. DPO on the
# SFT weights (~40 s): a learning rate far above MiniMind's 1e-8 (a tiny model, a few dozen steps), where the
# held-out preference moves without the model losing its words (bench/RESULTS.md has the figures).
LORA_FLAGS = ["--preset", "demo", "--max_seq_len", "128", "--batch_size", "16", "--epochs", "3",
              "--learning_rate", "1e-2", "--lora_name", "demo_identity"]
DPO_FLAGS = ["--preset", "demo", "--max_seq_len", "128", "--batch_size", "16", "--epochs", "3",
             "--learning_rate", "1e-4"]
