"""The Train tab's view of the model presets and the tokenizer's vocabulary size, without importing torch (the
app must start instantly).

The presets of every MiniMind generation come from `model.config` (torch-free); the parameter count and the
memory estimate from the trainer's torch-free memory plan (train/memory_plan.py); a unit test checks that each
preset's count equals the real model's parameter count.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.train.memory_plan import VOCAB, config_param_count, param_count
from model.config import GENERATION_PRESETS, LMConfig, make_config


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
    generation: str  # "v1", "gen2" (MiniMind2), "gen3" (minimind-3)
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    use_moe: bool
    max_seq_len: int | None  # the model's own cap, when the preset sets one
    config: LMConfig         # the network it builds with MiniMind's 6400-token vocabulary

    def params(self, vocab: int = VOCAB) -> int:
        """Exact parameter count with a tokenizer of `vocab` tokens (the embedding is the only part it sizes)."""
        return config_param_count(dataclasses.replace(self.config, vocab_size=vocab))


# What the Train tab's menu shows for v1's presets; the other generations' are named as upstream names them,
# with their parameter count. A preset added to model.config appears under its own name.
LABELS = {"demo": "demo (~1M)", "small": "26M small", "base": "104M base", "moe": "MoE 145M"}


def _preset(generation: str, key: str) -> Preset:
    cfg = make_config(generation, **GENERATION_PRESETS[generation][key])
    label = LABELS.get(key) or f"{key} {config_param_count(cfg) / 1e6:.0f}M"
    return Preset(key, label, generation, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.use_moe,
                  GENERATION_PRESETS[generation][key].get("max_seq_len"), cfg)


# Every generation's presets by name (names are unique across generations).
PRESETS: dict[str, Preset] = {key: _preset(g, key) for g, presets in GENERATION_PRESETS.items() for key in presets}
CUSTOM = "custom"


def presets_of(generation: str) -> list[Preset]:
    """The presets the menu offers for a generation, in model.config's order."""
    return [p for p in PRESETS.values() if p.generation == generation]


def default_preset(generation: str) -> str:
    """The preset of the model a generation's trainer builds when no size flag is given (its config class's
    defaults: v1 small, MiniMind2 minimind2-small, minimind-3 minimind-3)."""
    config = make_config(generation)
    return next(p.key for p in presets_of(generation)
                if (p.dim, p.n_layers, p.use_moe) == (config.dim, config.n_layers, config.use_moe))


def preset_for(generation: str, dim: int, n_layers: int, use_moe: bool) -> str | None:
    """The generation's preset of these sizes (what a checkpoint's shapes say), if it has one."""
    return next((p.key for p in presets_of(generation) if (p.dim, p.n_layers, p.use_moe) == (dim, n_layers, use_moe)),
                None)


__all__ = ["CUSTOM", "LABELS", "PRESETS", "Preset", "VOCAB", "default_preset", "param_count", "preset_for",
           "presets_of", "tokenizer_vocab"]
