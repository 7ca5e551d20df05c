"""The Train tab's view of the model presets and the tokenizer's vocabulary size, without importing torch (the
app must start instantly).

The presets come from `model.config` (torch-free); the parameter count and the memory estimate from the
trainer's torch-free memory plan (train/memory_plan.py); a unit test checks that `param_count` equals the real
model's parameter count.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.train.memory_plan import VOCAB, param_count
from model.config import PRESETS as MODEL_PRESETS
from model.config import LMConfig


@functools.lru_cache(maxsize=8)
def _vocab_in(tokenizer_json: str, mtime: float) -> int | None:
    try:
        data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
        ids = set(data["model"]["vocab"].values()) | {t["id"] for t in data.get("added_tokens", [])}
        return len(ids)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def tokenizer_vocab(folder: Path) -> int:
    """Vocabulary size of the tokenizer in `folder` (the trainer gives a new model that many rows), read from
    its tokenizer.json without loading it; MiniMind's 6400 when unreadable."""
    path = Path(folder) / "tokenizer.json"
    try:
        return _vocab_in(str(path), path.stat().st_mtime) or VOCAB
    except OSError:
        return VOCAB


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    use_moe: bool
    max_seq_len: int | None  # the model's own cap, when the preset sets one


# What the Train tab's menu shows; a preset added to model.config appears under its own name.
LABELS = {"demo": "demo (~1M)", "small": "26M small", "base": "104M base", "moe": "MoE 145M"}


def _preset(key: str) -> Preset:
    cfg = LMConfig(**MODEL_PRESETS[key])
    return Preset(key, LABELS.get(key, key), cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.use_moe,
                  MODEL_PRESETS[key].get("max_seq_len"))


PRESETS: dict[str, Preset] = {key: _preset(key) for key in MODEL_PRESETS}
CUSTOM = "custom"

__all__ = ["CUSTOM", "LABELS", "PRESETS", "Preset", "VOCAB", "param_count", "tokenizer_vocab"]
