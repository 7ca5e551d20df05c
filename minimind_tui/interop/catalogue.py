"""The files of MiniMind's recipe that `minimind-tui download` knows: where they live and where they go.

Sources (MiniMind's README): datasets in the ModelScope dataset gongjy/minimind_dataset, mirrored on Hugging
Face as jingyaogong/minimind_dataset; native PyTorch weights in gongjy/MiniMind2-PyTorch (Hugging Face:
jingyaogong/MiniMind2-Pytorch); the tokenizer from the transformers release gongjy/MiniMind2
(jingyaogong/MiniMind2). ModelScope is tried first, Hugging Face second.

Sizes are the README's rounded figures (display only). Exact byte counts and sha256 digests are verified
when an entry carries them; upstream publishes none for these files, so none are recorded here rather than
guessed. The upstream dataset repository has since added files for its newer recipe (pretrain_t2t_mini.jsonl,
sft_t2t_mini.jsonl) and may retire older ones: a 404 is reported per source.
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
}
# Where each kind goes under the project root (`--dest` replaces the first part).
# The tokenizer goes where a MiniMind checkout keeps it, which is where `train` looks by default.
_FOLDERS = {"dataset": ("dataset", ""), "weights": ("out", ""), "tokenizer": ("model", "minimind_tokenizer")}


@dataclass(frozen=True)
class Entry:
    name: str                     # the file name, also what the user types
    kind: str                     # "dataset" | "weights" | "tokenizer"
    approx_size: str = ""         # for the listing
    description: str = ""
    size: int | None = None       # exact bytes: verified when known
    sha256: str | None = None     # verified when known

    def urls(self, source: str = MODELSCOPE, mirror: str | None = None) -> list[str]:
        """Download URLs in the order to try: the chosen source first, then the other one.
        `mirror` (a base URL) replaces both, for a local or corporate mirror."""
        if mirror:
            return [mirror.rstrip("/") + "/" + self.name]
        bases = _SOURCES[self.kind]
        order = [source] + [s for s in bases if s != source]
        return [bases[s] + self.name for s in order if s in bases]

    def destination(self, root: Path | str = ".", dest: Path | str | None = None) -> Path:
        """The folder the file goes into: root/dataset, root/out, root/model/minimind_tokenizer, or dest."""
        base, sub = _FOLDERS[self.kind]
        folder = Path(dest) if dest is not None else Path(root) / base
        return folder / sub if sub else folder


def _datasets() -> list[Entry]:
    rows = [
        ("pretrain_hq.jsonl", "1.6 GB", "pretraining text (the recipe's pretrain stage)"),
        ("sft_mini_512.jsonl", "1.2 GB", "SFT conversations <512 tokens: the quick chat recipe"),
        ("sft_512.jsonl", "7.5 GB", "SFT conversations <512 tokens, full"),
        ("sft_1024.jsonl", "5.6 GB", "SFT conversations <1024 tokens (Qwen2.5-distilled)"),
        ("sft_2048.jsonl", "9 GB", "SFT conversations <2048 tokens (Qwen2.5-distilled)"),
        ("dpo.jsonl", "0.9 GB", "preference pairs (chosen/rejected) for DPO"),
        ("r1_mix_1024.jsonl", "340 MB", "reasoning distillation (DeepSeek-R1 style <think>)"),
        ("lora_identity.jsonl", "23 KB", "LoRA: the model's self-identity"),
        ("lora_medical.jsonl", "34 MB", "LoRA: medical Q&A"),
        ("pretrain_t2t_mini.jsonl", "1.2 GB", "newer upstream recipe: quick pretraining text"),
        ("sft_t2t_mini.jsonl", "1.6 GB", "newer upstream recipe: quick SFT conversations"),
    ]
    return [Entry(name, "dataset", size, desc) for name, size, desc in rows]


def _weights() -> list[Entry]:
    rows = []
    for dim, label, size in (("512", "MiniMind2-Small 26M", "~50 MB"), ("768", "MiniMind2 104M", "~200 MB"),
                             ("640_moe", "MiniMind2-MoE 145M", "~290 MB")):
        rows.append(Entry(f"pretrain_{dim}.pth", "weights", size, f"{label}, pretrained"))
        rows.append(Entry(f"full_sft_{dim}.pth", "weights", size, f"{label}, after SFT (chat)"))
        rows.append(Entry(f"rlhf_{dim}.pth", "weights", size, f"{label}, after DPO"))
        if dim != "640_moe":
            rows.append(Entry(f"reason_{dim}.pth", "weights", size, f"{label}, reasoning distillation"))
    return rows


CATALOGUE: list[Entry] = _datasets() + _weights() + [
    Entry("tokenizer.json", "tokenizer", "0.5 MB", "MiniMind tokenizer (byte-level BPE, 6400 tokens)"),
    Entry("tokenizer_config.json", "tokenizer", "2 KB", "MiniMind tokenizer settings and chat template"),
]

# Names that stand for several files.
GROUPS = {
    "tokenizer": ["tokenizer.json", "tokenizer_config.json"],
    "quickstart": ["pretrain_hq.jsonl", "sft_mini_512.jsonl", "tokenizer.json", "tokenizer_config.json"],
    "lora": ["lora_*.jsonl"],
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
