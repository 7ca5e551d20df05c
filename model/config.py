"""LMConfig: MiniMind's hyper-parameters, field names and defaults, plus named presets.

Imports nothing heavy (no torch): the dashboard reads the presets and the FFN width from here to fill its
form and estimate memory without loading a model."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class LMConfig:
    dim: int = 512
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int = 2            # grouped-query attention: 4 query heads share one K/V head
    vocab_size: int = 6400
    hidden_dim: int | None = None  # None -> ffn_hidden_dim(dim, multiple_of)
    multiple_of: int = 64
    norm_eps: float = 1e-5
    max_seq_len: int = 8192
    rope_theta: float = 1e6
    dropout: float = 0.0
    # Mixture of experts (DeepSeek-style: routed top-k plus an always-on shared expert)
    use_moe: bool = False
    num_experts_per_tok: int = 2
    n_routed_experts: int = 4
    n_shared_experts: bool = True
    aux_loss_alpha: float = 0.1
    seq_aux: bool = True
    norm_topk_prob: bool = True
    # ---- MiniMind compatibility: fields of MiniMind's config that this network ignores, kept so that
    # config files round-trip (the other shims: the marked block at the top of model.py) ----
    flash_attn: bool = True        # attention always goes through scaled_dot_product_attention
    scoring_func: str = "softmax"  # the only router scoring MiniMind implements
    # ----
    extra: dict = field(default_factory=dict, repr=False)  # unknown fields survive a round trip

    def __post_init__(self):
        if self.hidden_dim is None:
            self.hidden_dim = ffn_hidden_dim(self.dim, self.multiple_of)
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(d.pop("extra"))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)


def ffn_hidden_dim(dim: int, multiple_of: int = 64) -> int:
    """MiniMind's feed-forward width: 8/3 * dim rounded up to a multiple of `multiple_of`. SwiGLU has three
    matrices instead of two, so 8/3 keeps its parameters at about those of a 4 * dim two-matrix MLP."""
    hidden = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


# Presets named as users know them. Parameter counts (tied embeddings counted once):
# small 25.8M, base 104M, moe 145M (all experts), demo ~1M.
PRESETS: dict[str, dict] = {
    "demo": dict(dim=128, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=256),
    "small": dict(dim=512, n_layers=8),
    "base": dict(dim=768, n_layers=16),
    "moe": dict(dim=640, n_layers=8, use_moe=True),
}


def preset(name: str, **overrides) -> LMConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return LMConfig(**{**PRESETS[name], **overrides})
