"""MiniMind's hyper-parameters: LMConfig (the network's one config), each generation's own config class and
the named presets of every generation.

Imports nothing heavy (no torch): the dashboard reads the presets and the FFN width from here to fill its
form and estimate memory without loading a model.

Three generations of MiniMind exist (model/tokenizer.py tells them apart for tokenizers):
- "v1": the April 2025 code, `LMConfig` with fields `dim`, `n_layers`, ... (this project's own names too).
- "gen2": MiniMind2 (April 2025 to March 2026), `MiniMindConfig` with Hugging Face-style names
  (`hidden_size`, `num_hidden_layers`, ...): MiniMind2Config here.
- "gen3": minimind-3 (March 2026 on), `MiniMindConfig` rewritten (q/k norm, `head_dim`, a wider FFN,
  another MoE): MiniMind3Config here.
All three run on the one network in model/model.py: `MiniMind2Config(...).lm_config()` and
`MiniMind3Config(...).lm_config()` give the LMConfig that builds it, with the fields below that say
which generation's arithmetic and checkpoint format to use.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

GENERATIONS = {"v1": "MiniMind v1", "gen2": "MiniMind2", "gen3": "minimind-3"}  # id -> what users call it

# Each generation's LoRA rank (model/lora.py's apply_lora default; the memory plan counts adapters with it).
LORA_RANK = {"v1": 16, "gen2": 8, "gen3": 16}

# MiniMind2's and minimind-3's YaRN settings, fixed in their code and switched on by `inference_rope_scaling`:
# RoPE frequencies stretched for 16x the 2048 positions the models were trained on.
YARN_ROPE_SCALING = {"beta_fast": 32, "beta_slow": 1, "factor": 16, "original_max_position_embeddings": 2048,
                     "attention_factor": 1.0, "type": "yarn"}


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
    max_seq_len: int = 8192        # also the length of the RoPE table
    rope_theta: float = 1e6
    dropout: float = 0.0
    # Mixture of experts (DeepSeek-style: routed top-k plus an always-on shared expert)
    use_moe: bool = False
    num_experts_per_tok: int = 2
    n_routed_experts: int = 4
    n_shared_experts: bool | int = True  # v1: one shared expert or none; gen2: how many
    aux_loss_alpha: float = 0.1
    seq_aux: bool = True
    norm_topk_prob: bool = True
    # ---- What tells the generations apart; the defaults are v1's. MiniMind2Config / MiniMind3Config set them.
    generation: str = "v1"            # checkpoint format: v1's key names, or MiniMind2's / minimind-3's
                                      # Hugging Face-style names (model.layers.N.self_attn.q_proj.weight, ...)
    head_dim: int | None = None       # None -> dim // n_heads; minimind-3 may set it (q: dim -> n_heads * head_dim)
    qk_norm: bool = False             # minimind-3: RMSNorm over head_dim on q and k, before RoPE
    rope_layout: str = "interleaved"  # RoPE's pairs of dims: "interleaved" (x0, x1), (x2, x3)... (v1), or
                                      # "half" (x_i, x_i+head_dim/2), rotate_half (MiniMind2, minimind-3)
    rope_scaling: dict | None = None  # YaRN (YARN_ROPE_SCALING) when `inference_rope_scaling` is on
    norm_cast_last: bool = False      # minimind-3's RMSNorm: (w * norm(x.float())).type_as(x), not
                                      # w * norm(x.float()).type_as(x); the same in fp32
    moe_router: str = "deepseek"      # "deepseek" (v1, MiniMind2): gate weight after the experts, top-k weights
                                      # renormalised only when k > 1, per-sequence balance loss (seq_aux);
                                      # "switch" (minimind-3): an nn.Linear gate before the experts, top-k
                                      # weights always renormalised, loss sum(load * mean prob) * E * alpha
    tie_embeddings: bool = True       # the input embedding is the output projection (minimind-3 may untie)
    init_std: float | None = None     # None: PyTorch's default init (v1, MiniMind2); minimind-3: N(0, 0.02)
                                      # for every Linear and Embedding, as transformers' post_init does
    # ---- MiniMind compatibility: fields of MiniMind's config that this network ignores, kept so that
    # config files round-trip (the other shims: the marked block at the top of model.py) ----
    flash_attn: bool = True        # attention always goes through scaled_dot_product_attention
    scoring_func: str = "softmax"  # the only router scoring MiniMind implements
    # ----
    extra: dict = field(default_factory=dict, repr=False)  # unknown fields survive a round trip

    def __post_init__(self):
        if self.hidden_dim is None:
            self.hidden_dim = ffn_hidden_dim(self.dim, self.multiple_of)
        if self.head_dim is None:
            if self.dim % self.n_heads:
                raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
            self.head_dim = self.dim // self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        for name, allowed in (("generation", tuple(GENERATIONS)), ("rope_layout", ("interleaved", "half")),
                              ("moe_router", ("deepseek", "switch"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")

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
    """MiniMind's feed-forward width (v1, MiniMind2): 8/3 * dim rounded up to a multiple of `multiple_of`.
    SwiGLU has three matrices instead of two, so 8/3 keeps its parameters at about those of a 4 * dim
    two-matrix MLP."""
    hidden = int(2 * (4 * dim) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def ffn_hidden_dim_gen3(hidden_size: int) -> int:
    """minimind-3's feed-forward width: pi * hidden_size rounded up to a multiple of 64 (2432 at 768)."""
    return math.ceil(hidden_size * math.pi / 64) * 64


class _UpstreamConfig:
    """What MiniMind2's and minimind-3's config classes share beyond their fields."""
    inference_rope_scaling: bool

    @property
    def rope_scaling(self) -> dict | None:
        return dict(YARN_ROPE_SCALING) if self.inference_rope_scaling else None


@dataclass
class MiniMind2Config(_UpstreamConfig):
    """MiniMind2's `MiniMindConfig` (model/model_minimind.py up to March 2026): its field names and defaults."""
    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    vocab_size: int = 6400
    intermediate_size: int | None = None  # None -> ffn_hidden_dim(hidden_size)
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 32768  # the RoPE table's length
    rope_theta: float = 1e6
    inference_rope_scaling: bool = False  # YaRN (YARN_ROPE_SCALING), active when max positions > 2048
    dropout: float = 0.0
    hidden_act: str = "silu"
    flash_attn: bool = True
    bos_token_id: int = 1
    eos_token_id: int = 2
    use_moe: bool = False
    num_experts_per_tok: int = 2
    n_routed_experts: int = 4
    n_shared_experts: int = 1
    scoring_func: str = "softmax"
    aux_loss_alpha: float = 0.01
    seq_aux: bool = True
    norm_topk_prob: bool = True

    generation = "gen2"

    def __post_init__(self):
        if self.intermediate_size is None:
            self.intermediate_size = ffn_hidden_dim(self.hidden_size)
        _check_silu(self.hidden_act)

    def lm_config(self) -> LMConfig:
        return LMConfig(
            dim=self.hidden_size, n_layers=self.num_hidden_layers, n_heads=self.num_attention_heads,
            n_kv_heads=self.num_key_value_heads, vocab_size=self.vocab_size, hidden_dim=self.intermediate_size,
            norm_eps=self.rms_norm_eps, max_seq_len=self.max_position_embeddings, rope_theta=self.rope_theta,
            dropout=self.dropout, use_moe=self.use_moe, num_experts_per_tok=self.num_experts_per_tok,
            n_routed_experts=self.n_routed_experts, n_shared_experts=self.n_shared_experts,
            aux_loss_alpha=self.aux_loss_alpha, seq_aux=self.seq_aux, norm_topk_prob=self.norm_topk_prob,
            generation="gen2", rope_layout="half", rope_scaling=self.rope_scaling, flash_attn=self.flash_attn,
            scoring_func=self.scoring_func,
            extra=dict(bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id,
                       inference_rope_scaling=self.inference_rope_scaling))

    @classmethod
    def from_lm_config(cls, c: LMConfig) -> MiniMind2Config:
        return cls(
            hidden_size=c.dim, num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
            num_key_value_heads=c.n_kv_heads, vocab_size=c.vocab_size, intermediate_size=c.hidden_dim,
            rms_norm_eps=c.norm_eps, max_position_embeddings=c.max_seq_len, rope_theta=c.rope_theta,
            inference_rope_scaling=c.rope_scaling is not None, dropout=c.dropout, flash_attn=c.flash_attn,
            bos_token_id=c.extra.get("bos_token_id", 1), eos_token_id=c.extra.get("eos_token_id", 2),
            use_moe=c.use_moe, num_experts_per_tok=c.num_experts_per_tok, n_routed_experts=c.n_routed_experts,
            n_shared_experts=int(c.n_shared_experts), scoring_func=c.scoring_func,
            aux_loss_alpha=c.aux_loss_alpha, seq_aux=c.seq_aux, norm_topk_prob=c.norm_topk_prob)

    def to_dict(self) -> dict:
        """Every field after construction, as upstream's config object holds them (rope_scaling included)."""
        return {**dataclasses.asdict(self), "rope_scaling": self.rope_scaling}


@dataclass
class MiniMind3Config(_UpstreamConfig):
    """minimind-3's `MiniMindConfig` (March 2026 on): its field names and defaults."""
    hidden_size: int = 768
    num_hidden_layers: int = 8
    use_moe: bool = False
    dropout: float = 0.0
    vocab_size: int = 6400
    bos_token_id: int = 1
    eos_token_id: int = 2
    flash_attn: bool = True
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int | None = None           # None -> hidden_size // num_attention_heads
    hidden_act: str = "silu"
    intermediate_size: int | None = None  # None -> ffn_hidden_dim_gen3(hidden_size)
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    tie_word_embeddings: bool = True
    inference_rope_scaling: bool = False
    num_experts: int = 4
    num_experts_per_tok: int = 1
    moe_intermediate_size: int | None = None  # None -> intermediate_size
    norm_topk_prob: bool = True
    router_aux_loss_coef: float = 5e-4

    generation = "gen3"

    def __post_init__(self):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = ffn_hidden_dim_gen3(self.hidden_size)
        if self.moe_intermediate_size is None:
            self.moe_intermediate_size = self.intermediate_size
        _check_silu(self.hidden_act)

    def lm_config(self) -> LMConfig:
        # Every layer of a MoE model is MoE, so the network's one FFN width is the experts'.
        return LMConfig(
            dim=self.hidden_size, n_layers=self.num_hidden_layers, n_heads=self.num_attention_heads,
            n_kv_heads=self.num_key_value_heads, vocab_size=self.vocab_size,
            hidden_dim=self.moe_intermediate_size if self.use_moe else self.intermediate_size,
            norm_eps=self.rms_norm_eps, max_seq_len=self.max_position_embeddings, rope_theta=self.rope_theta,
            dropout=self.dropout, use_moe=self.use_moe, num_experts_per_tok=self.num_experts_per_tok,
            n_routed_experts=self.num_experts, n_shared_experts=0, aux_loss_alpha=self.router_aux_loss_coef,
            norm_topk_prob=self.norm_topk_prob, generation="gen3", head_dim=self.head_dim, qk_norm=True,
            rope_layout="half", rope_scaling=self.rope_scaling, norm_cast_last=True, moe_router="switch",
            tie_embeddings=self.tie_word_embeddings, init_std=0.02, flash_attn=self.flash_attn,
            extra=dict(bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id,
                       inference_rope_scaling=self.inference_rope_scaling,
                       intermediate_size=self.intermediate_size))

    @classmethod
    def from_lm_config(cls, c: LMConfig) -> MiniMind3Config:
        return cls(
            hidden_size=c.dim, num_hidden_layers=c.n_layers, use_moe=c.use_moe, dropout=c.dropout,
            vocab_size=c.vocab_size, bos_token_id=c.extra.get("bos_token_id", 1),
            eos_token_id=c.extra.get("eos_token_id", 2), flash_attn=c.flash_attn, num_attention_heads=c.n_heads,
            num_key_value_heads=c.n_kv_heads, head_dim=c.head_dim,
            intermediate_size=c.extra.get("intermediate_size", c.hidden_dim),
            max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps, rope_theta=c.rope_theta,
            tie_word_embeddings=c.tie_embeddings, inference_rope_scaling=c.rope_scaling is not None,
            num_experts=c.n_routed_experts, num_experts_per_tok=c.num_experts_per_tok,
            moe_intermediate_size=c.hidden_dim, norm_topk_prob=c.norm_topk_prob,
            router_aux_loss_coef=c.aux_loss_alpha)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rope_scaling": self.rope_scaling}


def _check_silu(act: str) -> None:
    if act != "silu":
        raise ValueError(f"hidden_act {act!r}: MiniMind's feed-forward is SwiGLU (silu)")


GENERATION_CONFIGS: dict[str, type[MiniMind2Config] | type[MiniMind3Config]] = {
    "gen2": MiniMind2Config, "gen3": MiniMind3Config}

# v1's fields under the Hugging Face-style names MiniMind2 and minimind-3 use: v1 accepts either spelling.
V1_ALIASES = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
              "num_key_value_heads": "n_kv_heads", "intermediate_size": "hidden_dim", "rms_norm_eps": "norm_eps",
              "max_position_embeddings": "max_seq_len"}


# v1's own config fields (LMConfig's others say which generation the network is).
V1_FIELDS = ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "hidden_dim", "multiple_of", "norm_eps",
             "max_seq_len", "rope_theta", "dropout", "use_moe", "num_experts_per_tok", "n_routed_experts",
             "n_shared_experts", "aux_loss_alpha", "seq_aux", "norm_topk_prob", "flash_attn", "scoring_func")


def config_fields(generation: str) -> list[str]:
    """The config field names of a generation's own config class (what load_minimind accepts)."""
    if generation == "v1":
        return [*V1_FIELDS, *V1_ALIASES]
    return [f.name for f in dataclasses.fields(GENERATION_CONFIGS[generation])]


def make_config(generation: str = "v1", **fields: Any) -> LMConfig:
    """The LMConfig of a generation's model from that generation's own config fields (upstream's names and
    defaults: MiniMind2Config / MiniMind3Config; v1: LMConfig's names, or the Hugging Face-style ones)."""
    if generation == "v1":
        renamed = {V1_ALIASES.get(k, k): v for k, v in fields.items()}
        if len(renamed) < len(fields):
            raise TypeError("a v1 config field is given twice, under both of its names")
        return LMConfig(**renamed)
    if generation not in GENERATION_CONFIGS:
        raise ValueError(f"unknown generation {generation!r}; choose one of {', '.join(GENERATIONS)}")
    return GENERATION_CONFIGS[generation](**fields).lm_config()


def upstream_config(config: LMConfig) -> dict:
    """A config's fields in its generation's own names and resolved values (v1: LMConfig's own): what
    MiniMind's code of that generation would hold, e.g. for a config.json."""
    if config.generation == "v1":
        return config.to_dict()
    return GENERATION_CONFIGS[config.generation].from_lm_config(config).to_dict()


# Presets named as users know them. Parameter counts (tied embeddings counted once):
# small 25.8M, base 104M, moe 145M (all experts), demo ~1M.
PRESETS: dict[str, dict] = {
    "demo": dict(dim=128, n_layers=4, n_heads=8, n_kv_heads=2, max_seq_len=256),
    "small": dict(dim=512, n_layers=8),
    "base": dict(dim=768, n_layers=16),
    "moe": dict(dim=640, n_layers=8, use_moe=True),
}

# Every generation's presets, in that generation's own field names. MiniMind2 kept v1's sizes (26M 25.830M,
# 104M 104.031M, MoE 145.030M); minimind-3: 63.912M dense, 198.417M MoE (63.937M active).
GENERATION_PRESETS: dict[str, dict[str, dict]] = {
    "v1": PRESETS,
    "gen2": {
        "minimind2-small": dict(hidden_size=512, num_hidden_layers=8),
        "minimind2": dict(hidden_size=768, num_hidden_layers=16),
        "minimind2-moe": dict(hidden_size=640, num_hidden_layers=8, use_moe=True),
    },
    "gen3": {
        "minimind-3": dict(hidden_size=768, num_hidden_layers=8),
        "minimind-3-moe": dict(hidden_size=768, num_hidden_layers=8, use_moe=True),
    },
}


def preset(name: str, **overrides) -> LMConfig:
    """The LMConfig of a named preset of any generation (names are unique across generations); overrides use
    that generation's field names."""
    for generation, presets in GENERATION_PRESETS.items():
        if name in presets:
            return make_config(generation, **{**presets[name], **overrides})
    names = [n for presets in GENERATION_PRESETS.values() for n in presets]
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(names)}")
