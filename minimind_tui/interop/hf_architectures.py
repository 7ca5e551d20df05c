"""MiniMind2 and minimind-3 as standard Hugging Face architectures, both ways (v1: llama_layout.py).

Which class computes each generation's function exactly, so transformers loads the export without
trust_remote_code and gives the same logits:
- MiniMind2 dense -> LlamaForCausalLM. MiniMind2 already rotates the halves of each head (rotate_half) and
  uses Llama's key names: the weights go over unchanged, no q/k row permutation (v1 needs one).
- minimind-3 dense -> Qwen3ForCausalLM: RMSNorm over head_dim on q and k before RoPE (q_norm, k_norm), an
  explicit head_dim, tied or untied embeddings; again the same key names.
- minimind-3 MoE -> Qwen3MoeForCausalLM. Both routers take softmax(gate(x)), its top-k and, with
  norm_topk_prob, divide the k weights by their sum (top-1: weight 1.0); no shared expert; every layer sparse.
- MiniMind2 MoE -> Qwen2MoeForCausalLM, the one standard class with a shared expert. It scales its shared
  expert by sigmoid(shared_expert_gate(x)); MiniMind2 adds its shared expert unscaled. A zero gate gives
  sigmoid(0) = 0.5 exactly, and the shared expert's down_proj is stored doubled: 0.5 * (2W)a = Wa bit for bit
  (a power of two only moves the exponent). MiniMind2 renormalises its top-k weights only when k > 1, so
  norm_topk_prob is declared false for k = 1.
Only the forward maps: the MoE balance losses differ (transformers' is computed over all layers' router logits
at once), which matters only to someone who trains the export in transformers with output_router_logits.

The generation travels in config.json as "minimind_generation" (transformers keeps unknown keys), so `import`
of a Llama folder written from MiniMind2 weights gives MiniMind2 weights back.
"""
from __future__ import annotations

import torch

from model.config import GENERATIONS, LMConfig, upstream_config

from .errors import InteropError

GENERATION_KEY = "minimind_generation"  # config.json: which MiniMind an export came from
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM",
                 "qwen2_moe": "Qwen2MoeForCausalLM"}
# model_type -> the generation whose network computes it (a Llama folder is told by GENERATION_KEY or a flag).
GENERATION_OF = {"qwen3": "gen3", "qwen3_moe": "gen3", "qwen2_moe": "gen2"}

_SHARED = ".mlp.shared_experts.0."  # MiniMind2's one shared expert
_HF_SHARED = ".mlp.shared_expert."  # Qwen2-MoE's


def model_type(config: LMConfig, source: object = "") -> str:
    """The Hugging Face model_type that computes this MiniMind2 / minimind-3 network; refused otherwise."""
    name = GENERATIONS[config.generation]
    if not config.use_moe:
        return "qwen3" if config.qk_norm else "llama"
    if config.generation == "gen3":
        return "qwen3_moe"
    if int(config.n_shared_experts) != 1:
        raise InteropError(f"{source}: a {name} MoE with {int(config.n_shared_experts)} shared experts has no "
                           f"standard Hugging Face class (Qwen2-MoE has exactly one); use the .pth with "
                           f"minimind-tui itself")
    return "qwen2_moe"


def hf_config(config: LMConfig, kind: str, bos_id: int, eos_id: int, pad_id: int,
              dtype: torch.dtype = torch.float32) -> dict:
    """config.json for `kind` (a model_type of ARCHITECTURES), in the field names transformers 4.51+ and 5 read."""
    up = upstream_config(config)
    cfg = {
        "architectures": [ARCHITECTURES[kind]], "model_type": kind, GENERATION_KEY: config.generation,
        "hidden_size": config.dim, "intermediate_size": up["intermediate_size"],
        "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads, "head_dim": config.head_dim, "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps, "rope_theta": config.rope_theta, "rope_scaling": None,
        "max_position_embeddings": config.max_seq_len, "vocab_size": config.vocab_size,
        "tie_word_embeddings": config.tie_embeddings, "attention_bias": False, "attention_dropout": 0.0,
        "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    if kind == "llama":
        cfg["mlp_bias"] = False
    else:  # the Qwen family: no sliding window; qkv_bias is Qwen2-MoE's switch for attention biases
        cfg.update(use_sliding_window=False, sliding_window=None, max_window_layers=config.n_layers)
    if config.use_moe:
        top_k = config.num_experts_per_tok
        cfg.update(num_experts=config.n_routed_experts, num_experts_per_tok=top_k,
                   moe_intermediate_size=config.hidden_dim, decoder_sparse_step=1, mlp_only_layers=[],
                   router_aux_loss_coef=config.aux_loss_alpha, output_router_logits=False,
                   norm_topk_prob=bool(config.norm_topk_prob))
    if kind == "qwen2_moe":
        cfg.update(qkv_bias=False, shared_expert_intermediate_size=config.hidden_dim,
                   norm_topk_prob=bool(config.norm_topk_prob) and config.num_experts_per_tok > 1)
    return cfg


def to_hf_state_dict(sd: dict[str, torch.Tensor], config: LMConfig, kind: str) -> dict[str, torch.Tensor]:
    """A MiniMind2 / minimind-3 state dict (its own key names, the tied matrix under one key or both) as
    `kind` stores it: a tied lm_head is implied by tie_word_embeddings; Qwen2-MoE's shared expert as above."""
    out = {}
    for name, tensor in sd.items():
        if name == "lm_head.weight" and config.tie_embeddings:
            continue
        if kind == "qwen2_moe" and _SHARED in name:
            name = name.replace(_SHARED, _HF_SHARED)
            if name.endswith("down_proj.weight"):
                tensor = _double(tensor, name)
        out[name] = tensor
    if "model.embed_tokens.weight" not in out:  # stored under lm_head only
        out["model.embed_tokens.weight"] = sd["lm_head.weight"]
    if kind == "qwen2_moe":
        for n in range(config.n_layers):  # sigmoid(0) = 0.5, which the doubled down_proj undoes
            out[f"model.layers.{n}.mlp.shared_expert_gate.weight"] = torch.zeros(
                1, config.dim, dtype=sd["model.embed_tokens.weight"].dtype)
    return out


def _double(tensor: torch.Tensor, name: str) -> torch.Tensor:
    doubled = tensor * 2
    if doubled.is_floating_point() and not torch.isfinite(doubled).all():  # fp16 past 32752: never in practice
        raise InteropError(f"{name}: doubling overflows {tensor.dtype}; export with --dtype float32")
    return doubled


def generation_of(cfg: dict, requested: str | None, source: object) -> str:
    """Which generation a folder's weights become: told by its model_type (Qwen3 and Qwen3-MoE: minimind-3,
    Qwen2-MoE: MiniMind2), else (a Llama, or anything read as one) by `requested`, else by the export's
    record, else v1 as always."""
    kind = cfg.get("model_type")
    told = GENERATION_OF.get(kind)
    if told is not None:
        if requested is not None and requested != told:
            raise InteropError(f"{source}: a {kind} model computes {GENERATIONS[told]}'s network, not "
                               f"{GENERATIONS[requested]}'s; leave out --generation")
        return told
    # Anything else is read as a Llama, as import always has (llama_layout refuses what does not fit).
    if requested is not None:
        if requested == "gen3":
            raise InteropError(f"{source}: a Llama model has no q/k norm, so it is no minimind-3; choose "
                               f"--generation v1 or gen2")
        return requested
    recorded = cfg.get(GENERATION_KEY)
    return recorded if recorded in ("v1", "gen2") else "v1"


def rope_theta(cfg: dict, source: object) -> float | None:
    """RoPE's base, refusing a scaled RoPE: transformers 4 writes rope_theta and rope_scaling, 5 also
    rope_parameters {"rope_type", "rope_theta"}."""
    params = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
    scaling = cfg.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else None)
    if scaling:
        raise InteropError(f"{source}: rope_scaling {scaling!r} is set; MiniMind's RoPE is unscaled (YaRN is "
                           f"switched on at inference with inference_rope_scaling)")
    theta = cfg.get("rope_theta", params.get("rope_theta"))
    return None if theta is None else float(theta)


def fields_from_hf(cfg: dict, generation: str, source: object) -> dict:
    """The settings a .pth cannot hold, in the generation's own config names (config.MiniMind2Config /
    MiniMind3Config), from a config.json; what MiniMind cannot compute is refused."""
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise InteropError(f"{source}: hidden_act is {act!r}; MiniMind's FFN is SwiGLU (silu)")
    if cfg.get("use_sliding_window"):
        raise InteropError(f"{source}: use_sliding_window is on; MiniMind attends to every earlier position")
    for flag in ("attention_bias", "qkv_bias", "mlp_bias"):
        if cfg.get(flag):
            raise InteropError(f"{source}: {flag} is on; MiniMind's projections have no biases")
    fields = {"rope_theta": rope_theta(cfg, source), "rms_norm_eps": cfg.get("rms_norm_eps"),
              "max_position_embeddings": cfg.get("max_position_embeddings")}
    if generation == "gen2":  # the shapes give the KV heads only once the query heads are known
        fields.update(num_attention_heads=cfg.get("num_attention_heads"),
                      num_key_value_heads=cfg.get("num_key_value_heads"))
    if cfg.get("num_experts") or cfg.get("model_type") in ("qwen3_moe", "qwen2_moe"):
        fields.update(_moe_fields(cfg, generation, source))
    return fields


def _moe_fields(cfg: dict, generation: str, source: object) -> dict:
    if cfg.get("decoder_sparse_step", 1) != 1 or cfg.get("mlp_only_layers"):
        raise InteropError(f"{source}: some layers are dense (decoder_sparse_step "
                           f"{cfg.get('decoder_sparse_step', 1)}, mlp_only_layers {cfg.get('mlp_only_layers')}); "
                           f"every layer of a MiniMind MoE is sparse")
    top_k, norm = cfg.get("num_experts_per_tok"), cfg.get("norm_topk_prob", False)
    if generation == "gen3":
        return {"num_experts_per_tok": top_k, "norm_topk_prob": bool(norm),
                "router_aux_loss_coef": cfg.get("router_aux_loss_coef")}
    if top_k == 1 and norm:
        raise InteropError(f"{source}: top-1 routing with norm_topk_prob (every weight 1.0); MiniMind2 keeps "
                           f"the top-1 probability, so it cannot compute this model")
    return {"num_experts_per_tok": top_k, "norm_topk_prob": bool(norm) or top_k == 1,
            "aux_loss_alpha": cfg.get("router_aux_loss_coef")}


def from_hf_state_dict(weights: dict[str, torch.Tensor], source: object) -> dict[str, torch.Tensor]:
    """Hugging Face weights (Llama, Qwen3, Qwen3-MoE, Qwen2-MoE) under the generation's own key names: the
    inverse of to_hf_state_dict; experts fused into 3-D tensors (transformers 5's layout) are split again."""
    out = {}
    for name, tensor in weights.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue  # a buffer older transformers saved; recomputed
        if name.endswith(".mlp.shared_expert_gate.weight"):
            if torch.count_nonzero(tensor):
                raise InteropError(f"{source}: {name} is not zero: its shared expert is gated, which "
                                   f"MiniMind2 (an ungated shared expert) cannot compute")
            continue
        if _HF_SHARED in name:
            name = name.replace(_HF_SHARED, _SHARED)
            if name.endswith("down_proj.weight"):
                tensor = tensor / 2  # exact: see the module docstring
        if name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            out.update(_split_experts(name, tensor))
            continue
        out[name] = tensor
    return out


def _split_experts(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """transformers 5's fused experts -> one gate/up/down_proj per expert: gate_up_proj (E, 2I, H) holds each
    expert's gate rows then its up rows; down_proj (E, H, I)."""
    prefix = name.rsplit(".", 1)[0]  # model.layers.N.mlp.experts
    if name.endswith("gate_up_proj"):
        gate, up = tensor.chunk(2, dim=1)
        return {**{f"{prefix}.{e}.gate_proj.weight": g for e, g in enumerate(gate)},
                **{f"{prefix}.{e}.up_proj.weight": u for e, u in enumerate(up)}}
    return {f"{prefix}.{e}.down_proj.weight": d for e, d in enumerate(tensor)}
