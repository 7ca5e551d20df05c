"""The Train tab's view of the model presets, and a GPU-memory estimate, without importing torch (the app
must start instantly).

The presets and the FFN width come from `model.config` (torch-free); a unit test checks that `param_count`
equals the real model's parameter count.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from model.config import PRESETS as MODEL_PRESETS
from model.config import LMConfig, ffn_hidden_dim

_DEFAULT = LMConfig()
VOCAB = _DEFAULT.vocab_size  # MiniMind's tokenizer


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


def param_count(dim: int, n_layers: int, use_moe: bool = False, n_heads: int = _DEFAULT.n_heads,
                n_kv_heads: int = _DEFAULT.n_kv_heads, vocab: int = VOCAB) -> int:
    """Exact parameter count of MiniMindLM (tied embedding counted once)."""
    kv_dim = n_kv_heads * (dim // n_heads)
    attention = 2 * dim * dim + 2 * dim * kv_dim
    ffn = 3 * dim * ffn_hidden_dim(dim)
    if use_moe:  # the MoE layout is model.config's default: routed experts, a shared one, a router
        experts = _DEFAULT.n_routed_experts + int(_DEFAULT.n_shared_experts)
        ffn = ffn * experts + _DEFAULT.n_routed_experts * dim
    return vocab * dim + n_layers * (attention + ffn + 2 * dim) + dim


# Calibration (see tests/unit/test_gpu_estimate.py): autograd saves about 32 values per token, layer and
# model dimension for a dense block (measured with saved_tensors_hooks), about 80 with MoE (three FFNs run per
# token); under bf16/fp16 most are 2 bytes and the fp32 norm copies add ~25%. Logits: fp32 logits, their
# softmax and gradient, 12 bytes per vocab entry. With these, batch 64 x 512, dim 512, 8 layers, bf16 comes
# to ~14 GB, what the reference MiniMind run used.
SAVED_PER_TOKEN_LAYER_DIM = {False: 32, True: 80}
BYTES_PER_SAVED = {"bfloat16": 2.5, "float16": 2.5, "float32": 4.0}
LOGIT_BYTES = 12
CUDA_CONTEXT_GB = 0.5


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    weights_gb: float       # fp32 weights + grads + AdamW moments
    activations_gb: float
    logits_gb: float
    total_gb: float


def estimate_memory(dim: int, n_layers: int, batch_size: int, seq_len: int, dtype: str = "bfloat16",
                    use_moe: bool = False, vocab: int = VOCAB) -> MemoryEstimate:
    """Peak GPU memory of one training rank, in GB. An estimate (about ±50%), not a measurement."""
    params = param_count(dim, n_layers, use_moe, vocab=vocab)
    tokens = batch_size * seq_len
    weights = params * 16  # fp32 master weights 4 + grads 4 + AdamW exp_avg 4 + exp_avg_sq 4
    acts = tokens * n_layers * dim * SAVED_PER_TOKEN_LAYER_DIM[use_moe] * BYTES_PER_SAVED.get(dtype, 4.0)
    logits = tokens * vocab * LOGIT_BYTES
    gb = 1024**3
    return MemoryEstimate(params, weights / gb, acts / gb, logits / gb,
                          (weights + acts + logits) / gb + CUDA_CONTEXT_GB)
