"""How a MiniMind state dict maps onto Hugging Face's Llama layout, both ways.

Two differences besides names:
- RoPE. MiniMind rotates interleaved pairs (x0,x1),(x2,x3)... (complex multiplication); HF Llama rotates
  x[i] with x[i + head_dim/2] ("rotate_half"). Both rotate the same frequencies, so reordering the rows
  of wq and wk inside each head (even rows first, then odd rows) turns one into the other: q·k is
  unchanged because q and k get the same permutation. Meta's llama->HF converter does the same.
- Tied embeddings: one matrix in MiniMind (tok_embeddings == output). The export stores it once as
  model.embed_tokens.weight with tie_word_embeddings=true; lm_head.weight is implied.
"""
from __future__ import annotations

import re

import torch

from model.config import LMConfig

from .errors import InteropError
from .hf_architectures import rope_theta

# (native pattern, HF pattern); {n} is the layer index.
_LAYER_NAMES = [
    ("layers.{n}.attention.wq.weight", "model.layers.{n}.self_attn.q_proj.weight"),
    ("layers.{n}.attention.wk.weight", "model.layers.{n}.self_attn.k_proj.weight"),
    ("layers.{n}.attention.wv.weight", "model.layers.{n}.self_attn.v_proj.weight"),
    ("layers.{n}.attention.wo.weight", "model.layers.{n}.self_attn.o_proj.weight"),
    ("layers.{n}.attention_norm.weight", "model.layers.{n}.input_layernorm.weight"),
    ("layers.{n}.ffn_norm.weight", "model.layers.{n}.post_attention_layernorm.weight"),
    ("layers.{n}.feed_forward.w1.weight", "model.layers.{n}.mlp.gate_proj.weight"),
    ("layers.{n}.feed_forward.w3.weight", "model.layers.{n}.mlp.up_proj.weight"),
    ("layers.{n}.feed_forward.w2.weight", "model.layers.{n}.mlp.down_proj.weight"),
]
_GLOBAL_NAMES = [
    ("tok_embeddings.weight", "model.embed_tokens.weight"),
    ("norm.weight", "model.norm.weight"),
]


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(re.escape("{n}"), r"(\d+)") + "$")


_TO_HF = [(_pattern(a), b) for a, b in _LAYER_NAMES] + [(_pattern(a), b) for a, b in _GLOBAL_NAMES]
_TO_NATIVE = [(_pattern(b), a) for a, b in _LAYER_NAMES] + [(_pattern(b), a) for a, b in _GLOBAL_NAMES]


def _rename(name: str, table) -> str | None:
    for pattern, target in table:
        m = pattern.match(name)
        if m:
            return target.format(n=m.group(1)) if m.groups() else target
    return None


def interleaved_to_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of a q/k projection, per head: (0,1,2,3,...) interleaved pairs -> (0,2,4,...,1,3,5,...)."""
    out_features, dim = w.shape
    head_dim = out_features // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(out_features, dim)


def half_to_interleaved(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of interleaved_to_half."""
    out_features, dim = w.shape
    head_dim = out_features // n_heads
    return w.reshape(n_heads, 2, head_dim // 2, dim).transpose(1, 2).reshape(out_features, dim)


def to_hf_state_dict(sd: dict[str, torch.Tensor], config: LMConfig, source: object = "") -> dict[str, torch.Tensor]:
    if config.use_moe:
        where = f"{source}: " if source else ""
        raise InteropError(
            f"{where}MoE checkpoints cannot be exported to the Llama format: Llama has one dense FFN per layer, "
            f"while this model routes each token to {config.num_experts_per_tok} of its {config.n_routed_experts} "
            f"experts{' plus a shared expert' if config.n_shared_experts else ''}, so no Llama config computes the "
            f"same function. Export a dense model, or use the .pth file with minimind-tui itself.")
    out = {}
    for name, tensor in sd.items():
        if name == "output.weight":
            continue  # tied to tok_embeddings: stored once (tie_word_embeddings=true)
        hf = _rename(name, _TO_HF)
        if hf is None:
            raise InteropError(f"weight {name!r} has no place in the Llama layout; is this a MiniMind checkpoint?")
        if name.endswith("attention.wq.weight"):
            tensor = interleaved_to_half(tensor, config.n_heads)
        elif name.endswith("attention.wk.weight"):
            tensor = interleaved_to_half(tensor, config.n_kv_heads)
        out[hf] = tensor
    return out


def from_hf_state_dict(sd: dict[str, torch.Tensor], n_heads: int, n_kv_heads: int,
                       source: str = "") -> dict[str, torch.Tensor]:
    where = f"{source}: " if source else ""
    out = {}
    lm_head = sd.get("lm_head.weight")
    for name, tensor in sd.items():
        if name == "lm_head.weight" or name.endswith("rotary_emb.inv_freq"):
            continue  # lm_head: checked against the embedding below; inv_freq: recomputed buffer
        native = _rename(name, _TO_NATIVE)
        if native is None:
            hint = (" (per-head q_norm/k_norm: a Qwen3 / minimind-3 model, whose config.json says model_type qwen3)"
                    if "q_norm" in name or "k_norm" in name else
                    " (attention biases are not part of MiniMind's architecture)" if name.endswith(".bias") else "")
            raise InteropError(f"{where}weight {name!r} has no counterpart in MiniMind{hint}")
        if native.endswith("attention.wq.weight"):
            tensor = half_to_interleaved(tensor, n_heads)
        elif native.endswith("attention.wk.weight"):
            tensor = half_to_interleaved(tensor, n_kv_heads)
        out[native] = tensor
    if "tok_embeddings.weight" not in out:
        raise InteropError(f"{where}no model.embed_tokens.weight: not a Llama-format model")
    if lm_head is not None and not torch.equal(lm_head, out["tok_embeddings.weight"]):
        raise InteropError(f"{where}lm_head.weight differs from the input embedding; MiniMind ties the two, so "
                           f"this model cannot be represented without changing its outputs")
    out["output.weight"] = out["tok_embeddings.weight"]
    return out


def llama_config(config: LMConfig, bos_id: int = 1, eos_id: int = 2, pad_id: int = 0,
                 dtype: torch.dtype = torch.float32) -> dict:
    """config.json for transformers' LlamaForCausalLM (also what llama.cpp's converter reads)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "max_position_embeddings": config.max_seq_len,
        "vocab_size": config.vocab_size,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def config_from_llama(cfg: dict, source: str = "") -> dict:
    """LMConfig fields from a Llama-style config.json; anything MiniMind cannot compute is refused."""
    where = f"{source}: " if source else ""
    try:
        dim, n_heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        fields = dict(
            dim=dim, n_layers=int(cfg["num_hidden_layers"]), n_heads=n_heads,
            n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
            vocab_size=int(cfg["vocab_size"]), hidden_dim=int(cfg["intermediate_size"]),
            norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), max_seq_len=int(cfg.get("max_position_embeddings", 8192)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InteropError(f"{where}config.json lacks or mangles {e}; is this a Llama-style model?") from None
    theta = rope_theta(cfg, source or "config.json")  # transformers 5 writes it under rope_parameters
    fields["rope_theta"] = 10000.0 if theta is None else theta
    if cfg.get("use_moe") or cfg.get("num_local_experts"):
        raise InteropError(f"{where}a mixture-of-experts model; only dense Llama-format models can be imported")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise InteropError(f"{where}hidden_act is {act!r}; MiniMind's FFN is SwiGLU (silu)")
    head_dim = cfg.get("head_dim")
    if head_dim is not None and int(head_dim) * n_heads != dim:
        raise InteropError(f"{where}head_dim {head_dim} x {n_heads} heads != hidden_size {dim}; MiniMind needs "
                           f"head_dim = hidden_size / num_attention_heads")
    return fields
