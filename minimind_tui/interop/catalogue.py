"""The files of MiniMind's recipes that `minimind-tui download` knows: where they live and where they go.

Sources (MiniMind's README): datasets in the ModelScope dataset gongjy/minimind_dataset, mirrored on Hugging
Face as jingyaogong/minimind_dataset; MiniMind2's native PyTorch weights in gongjy/MiniMind2-PyTorch (Hugging Face:
jingyaogong/MiniMind2-Pytorch) and its tokenizer from the transformers release gongjy/MiniMind2
(jingyaogong/MiniMind2); minimind-3's weights in gongjy/minimind-3-pytorch (jingyaogong/minimind-3-pytorch) and its
tokenizer from the transformers release gongjy/minimind-3 (jingyaogong/minimind-3). ModelScope is tried first,
Hugging Face second.

minimind-3 publishes files under the same names as MiniMind2 (`full_sft_768.pth`, `tokenizer.json`), which are
different files: its entries are typed with a `minimind-3/` prefix and go into folders of their own
(out/minimind-3/, model/minimind-3_tokenizer/), so one never passes for the other.

Sizes are the README's rounded figures (display only). Exact byte counts and sha256 digests are verified
when an entry carries them; upstream publishes none for these files, so none are recorded here rather than
guessed. The dataset repository serves both recipes: MiniMind2's files (pretrain_hq, sft_*_512..2048, r1_mix,
rlaif-mini, lora_*) and minimind-3's (the *_t2t* files, rlaif, agent_rl, agent_rl_math); it may retire older ones:
a 404 is reported per source.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from .errors import InteropError

MODELSCOPE, HUGGINGFACE = "modelscope", "hf"
_SOURCES = {
    "dataset": {MODELSCOPE: "https://www.modelscope.cn/datasets/gongjy/minimind_dataset/resolve/master/",
                HUGGINGFACE: "https://huggingface.co/datasets/jingyaogong/minimind_dataset/resolve/main/"},
    "weights": {MODELSCOPE: "https://www.modelscope.cn/models/gongjy/MiniMind2-PyTorch/resolve/master/",
                HUGGINGFACE: "https://huggingface.co/jingyaogong/MiniMind2-Pytorch/resolve/main/"},
    "tokenizer": {MODELSCOPE: "https://www.modelscope.cn/models/gongjy/MiniMind2/resolve/master/",
                  HUGGINGFACE: "https://huggingface.co/jingyaogong/MiniMind2/resolve/main/"},
    "weights-3": {MODELSCOPE: "https://www.modelscope.cn/models/gongjy/minimind-3-pytorch/resolve/master/",
                  HUGGINGFACE: "https://huggingface.co/jingyaogong/minimind-3-pytorch/resolve/main/"},
    "tokenizer-3": {MODELSCOPE: "https://www.modelscope.cn/models/gongjy/minimind-3/resolve/master/",
                    HUGGINGFACE: "https://huggingface.co/jingyaogong/minimind-3/resolve/main/"},
}
# Where each source's files go under the project root (`--dest` replaces the first part).
# MiniMind2's tokenizer goes where a MiniMind checkout keeps it, which is where `train` looks by default.
_FOLDERS = {"dataset": ("dataset", ""), "weights": ("out", ""), "tokenizer": ("model", "minimind_tokenizer"),
            "weights-3": ("out", "minimind-3"), "tokenizer-3": ("model", "minimind-3_tokenizer")}
GENERATION_PREFIX = "minimind-3/"


@dataclass(frozen=True)
class Entry:
    name: str                     # what the user types: the file name, "minimind-3/" before minimind-3's
    kind: str                     # "dataset" | "weights" | "tokenizer"
    approx_size: str = ""         # for the listing
    description: str = ""
    size: int | None = None       # exact bytes: verified when known
    sha256: str | None = None     # verified when known
    source: str | None = None     # a key of _SOURCES (default: the kind)

    @property
    def file(self) -> str:
        """The file's name upstream and on disk."""
        return self.name.rsplit("/", 1)[-1]

    def urls(self, source: str = MODELSCOPE, mirror: str | None = None) -> list[str]:
        """Download URLs in the order to try: the chosen source first, then the other one.
        `mirror` (a base URL) replaces both, for a local or corporate mirror."""
        if mirror:
            return [mirror.rstrip("/") + "/" + self.file]
        bases = _SOURCES[self.source or self.kind]
        order = [source] + [s for s in bases if s != source]
        return [bases[s] + self.file for s in order if s in bases]

    def destination(self, root: Path | str = ".", dest: Path | str | None = None) -> Path:
        """The folder the file goes into: root/dataset, root/out, root/model/minimind_tokenizer (minimind-3:
        root/out/minimind-3, root/model/minimind-3_tokenizer), or dest (and the same subfolder)."""
        base, sub = _FOLDERS[self.source or self.kind]
        folder = Path(dest) if dest is not None else Path(root) / base
        return folder / sub if sub else folder


def _datasets() -> list[Entry]:
    rows = [
        ("pretrain_hq.jsonl", "1.6 GB", "pretraining text (the recipe's pretrain stage)"),
        ("sft_mini_512.jsonl", "1.2 GB", "SFT conversations <512 tokens: the quick chat recipe"),
        ("sft_512.jsonl", "7.5 GB", "SFT conversations <512 tokens, full"),
        ("sft_1024.jsonl", "5.6 GB", "SFT conversations <1024 tokens (Qwen2.5-distilled)"),
        ("sft_2048.jsonl", "9 GB", "SFT conversations <2048 tokens (Qwen2.5-distilled)"),
        ("dpo.jsonl", "53 MB", "preference pairs (chosen/rejected) for DPO"),
        ("r1_mix_1024.jsonl", "340 MB", "reasoning distillation (DeepSeek-R1 style <think>)"),
        ("rlaif-mini.jsonl", "1 MB", "MiniMind2: RLAIF prompts for PPO/GRPO (10k rows sampled from SFT)"),
        ("lora_identity.jsonl", "23 KB", "LoRA: the model's self-identity"),
        ("lora_medical.jsonl", "34 MB", "LoRA: medical Q&A"),
        ("pretrain_t2t_mini.jsonl", "1.2 GB", "minimind-3: quick pretraining text (max_seq_len ~768)"),
        ("pretrain_t2t.jsonl", "10 GB", "minimind-3: main pretraining text (max_seq_len ~380)"),
        ("sft_t2t_mini.jsonl", "1.6 GB", "minimind-3: quick SFT conversations, with tool calls and reasoning"),
        ("sft_t2t.jsonl", "14 GB", "minimind-3: main SFT conversations, with tool calls and reasoning"),
        ("rlaif.jsonl", "24 MB", "minimind-3: RLAIF prompts for PPO/GRPO/CISPO"),
        ("agent_rl.jsonl", "86 MB", "minimind-3: agentic RL, multi-turn tool use with a checked answer (gt)"),
        ("agent_rl_math.jsonl", "18 MB", "minimind-3: agentic RL, maths with a checked answer (gt)"),
        ("lora_exam.jsonl", "", "minimind-3: LoRA for exam-style multiple choice (ceval/mmlu formats)"),
    ]
    return [Entry(name, "dataset", size, desc) for name, size, desc in rows]


def _weights() -> list[Entry]:
    """MiniMind2's weights: `rlhf_*` is the April 2025 name of the DPO stage, `dpo_*` MiniMind2's later one."""
    rows = []
    for dim, label, size in (("512", "MiniMind2-Small 26M", "~50 MB"), ("768", "MiniMind2 104M", "~200 MB"),
                             ("640_moe", "MiniMind2-MoE 145M", "~290 MB")):
        rows.append(Entry(f"pretrain_{dim}.pth", "weights", size, f"{label}, pretrained"))
        rows.append(Entry(f"full_sft_{dim}.pth", "weights", size, f"{label}, after SFT (chat)"))
        rows.append(Entry(f"rlhf_{dim}.pth", "weights", size, f"{label}, after DPO"))
        rows.append(Entry(f"dpo_{dim}.pth", "weights", size, f"{label}, after DPO (MiniMind2's newer name)"))
        if dim != "640_moe":
            rows.append(Entry(f"reason_{dim}.pth", "weights", size, f"{label}, reasoning distillation"))
    return rows


def _minimind3() -> list[Entry]:
    """minimind-3's weights (fp16, as its trainers write them) and tokenizer. Only what its README names or links."""
    p = GENERATION_PREFIX
    models = (("", "minimind-3 64M", "~130 MB"), ("_moe", "minimind-3-moe 198M-A64M", "~400 MB"))
    stages = (("pretrain", "pretrained"), ("full_sft", "after SFT (chat, tools)"))
    rows = [Entry(f"{p}{stage}_768{moe}.pth", "weights", size, f"{label}, {what}", source="weights-3")
            for moe, label, size in models for stage, what in stages]
    rows.append(Entry(f"{p}full_sft_zero_768.pth", "weights", "~130 MB",
                      "minimind-3 64M Zero (t2t_mini data only)", source="weights-3"))
    rows.append(Entry(f"{p}lora_exam_768.pth", "weights", "", "minimind-3 64M LoRA for exam-style multiple choice",
                      source="weights-3"))
    rows.append(Entry(f"{p}tokenizer.json", "tokenizer", "0.5 MB", "minimind-3 tokenizer (its own BPE, 6400 tokens)",
                      source="tokenizer-3"))
    rows.append(Entry(f"{p}tokenizer_config.json", "tokenizer", "14 KB",
                      "minimind-3 tokenizer settings, chat template", source="tokenizer-3"))
    return rows


CATALOGUE: list[Entry] = _datasets() + _weights() + [
    Entry("tokenizer.json", "tokenizer", "0.5 MB", "MiniMind2 release tokenizer (byte-level BPE, 6400 tokens; "
                                                   "v1's vocabulary)"),
    Entry("tokenizer_config.json", "tokenizer", "2 KB", "MiniMind2 release tokenizer settings and chat template"),
] + _minimind3()

# Names that stand for several files.
GROUPS = {
    "tokenizer": ["tokenizer.json", "tokenizer_config.json"],
    "quickstart": ["pretrain_hq.jsonl", "sft_mini_512.jsonl", "tokenizer.json", "tokenizer_config.json"],
    "lora": ["lora_*.jsonl"],
    "tokenizer-3": [f"{GENERATION_PREFIX}tokenizer.json", f"{GENERATION_PREFIX}tokenizer_config.json"],
    "quickstart-3": ["pretrain_t2t_mini.jsonl", "sft_t2t_mini.jsonl", f"{GENERATION_PREFIX}tokenizer.json",
                     f"{GENERATION_PREFIX}tokenizer_config.json"],
}


def select(names: list[str], catalogue: list[Entry] | None = None) -> list[Entry]:
    """Entries for the names given: file names, shell patterns (sft_*.jsonl) or group names."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    by_name = {e.name: e for e in catalogue}
    chosen: list[Entry] = []
    for name in names:
        patterns = GROUPS.get(name, [name])
        matches = [e for p in patterns for e in catalogue if fnmatch.fnmatchcase(e.name, p)]
        if not matches:
            close = difflib.get_close_matches(name, list(by_name) + list(GROUPS), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `minimind-tui download --list`"
            raise InteropError(f"unknown download {name!r}{hint}")
        chosen.extend(e for e in matches if e not in chosen)
    return chosen
