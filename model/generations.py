"""Any MiniMind generation's weights in, each generation's own format out.

    from model import load_minimind, save_minimind
    m = load_minimind("out/full_sft_768.pth", hidden_size=768, num_hidden_layers=8)
    m.generation                     # "v1", "gen2" (MiniMind2) or "gen3" (minimind-3)
    m(input_ids).logits; m.generate(input_ids, max_new_tokens=100)
    save_minimind(m, "out/full_sft_768.pth")   # as that generation's trainer writes it

The generation is told by the file's keys (key_names.detect_generation); the sizes by its tensor shapes;
the rest (heads where the shapes cannot tell them, theta, eps, positions, MoE routing) by keyword arguments
under the generation's own config names and defaults (config.MiniMind2Config, MiniMind3Config; v1: LMConfig's
names, or the Hugging Face-style ones). An argument the shapes contradict is a one-line CheckpointError
naming the file, the generation and the flag to fix.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from . import key_names
from .checkpoint import CheckpointError, WeightShapes, check_compatible, infer_config, load_state_dict, save_atomic
from .config import GENERATIONS, V1_ALIASES, LMConfig, config_fields, make_config
from .lora import attach_lora_state
from .model import MiniMindLM

# Names another generation uses for a setting -> this generation's name, for the error that suggests it.
_HF_FOR_V1 = {v1: hf for hf, v1 in V1_ALIASES.items()}
OTHER_NAMES = {
    "v1": {"num_experts": "n_routed_experts", "router_aux_loss_coef": "aux_loss_alpha"},
    "gen2": {**_HF_FOR_V1, "num_experts": "n_routed_experts", "router_aux_loss_coef": "aux_loss_alpha",
             "moe_intermediate_size": "intermediate_size"},
    "gen3": {**_HF_FOR_V1, "n_routed_experts": "num_experts", "aux_loss_alpha": "router_aux_loss_coef"},
}


def load_minimind(path, device: str | torch.device = "cpu", **config: Any) -> MiniMindLM:
    """Any MiniMind's weights as a ready model: eval mode, fp32, on `device`; `.generation` says which.

    path: a `.pth` state dict (v1's fp32 out/*.pth, MiniMind2's / minimind-3's fp16 ones, a run checkpoint;
    the tied embedding stored under one key or both; LoRA adapters saved in it stay attached, unmerged), or a
    Hugging Face folder of MiniMind2 / minimind-3 (config.json with model_type "minimind" and
    model.safetensors or pytorch_model.bin). Nothing from the
    file or folder runs: weights_only loading, and the folder's config.json is read as data.
    config: what the shapes cannot tell, in the generation's own names and with its defaults
    (num_attention_heads and num_key_value_heads for MiniMind2, rope_theta, rms_norm_eps,
    max_position_embeddings, inference_rope_scaling, num_experts_per_tok, ...; v1: n_heads, norm_eps, ...
    or the Hugging Face-style names). Sizes may be given too (hidden_size=768, num_hidden_layers=8, as
    upstream's scripts pass them): they are checked against the weights. A folder's config.json supplies
    defaults for these; keyword arguments win."""
    source = Path(path)
    if source.is_dir():
        state_dict, folder_config = read_hf_folder(source)
    else:
        state_dict, folder_config = load_state_dict(source), {}
    generation = key_names.detect_generation(state_dict)
    if generation is None:
        raise CheckpointError(f"{source}: not a MiniMind checkpoint (neither tok_embeddings.weight nor "
                              f"model.embed_tokens.weight among its {len(state_dict)} keys)")
    given = {**{k: v for k, v in folder_config.items() if k in config_fields(generation)}, **config}
    model = MiniMindLM(config_for_weights(state_dict, generation, source, **given))
    missing, _ = check_compatible(model, state_dict, source, _flags(generation))
    if missing:
        raise CheckpointError(f"{source}: missing weights {', '.join(missing[:5])}"
                              f"{' …' if len(missing) > 5 else ''}; is this a complete {GENERATIONS[generation]} "
                              f"checkpoint?")
    model.load_state_dict(state_dict, strict=False)
    adapter = {k: v for k, v in state_dict.items() if ".lora." in k}
    if adapter:  # saved with LoRA adapters attached (a LoRA run's checkpoint, upstream's resume file): kept on
        attach_lora_state(model, adapter, source)
    return model.float().to(device).eval()


def config_for_weights(state_dict: dict[str, torch.Tensor], generation: str, source: object = "",
                       **given: Any) -> LMConfig:
    """The config of a `generation` state dict: sizes from its shapes, the rest from `given` (that
    generation's config names) or its defaults. Fills in a tied embedding stored under one key only
    (state_dict is changed in place)."""
    name = GENERATIONS[generation]
    given = {k: v for k, v in given.items() if v is not None}  # None: the default (a config.json's nulls)
    for key in given:
        if key not in config_fields(generation):
            hint = OTHER_NAMES[generation].get(key)
            raise CheckpointError(f"{source}: a {name} checkpoint has no setting {key!r}"
                                  + (f"; {name} calls it {hint} (--{hint})" if hint else ""))
    tied = _fill_tied(state_dict, generation, source)
    shapes = WeightShapes.of({key_names.v1_key(k): v for k, v in state_dict.items()}, source)
    if generation == "v1":
        given = {V1_ALIASES.get(k, k): v for k, v in given.items()}
    read = _read_from_shapes(shapes, generation, tied, given, source)
    for key, value in read.items():
        if key in given and _differs(given[key], value):
            raise CheckpointError(f"{source}: this {name} checkpoint (told by its key names) has {key} {value}, "
                                  f"but {key}={given[key]!r} was given; fix --{key} or leave it out")
    try:
        if generation == "v1":
            return infer_config(state_dict, **given)
        return make_config(generation, **{**given, **read})
    except (TypeError, ValueError) as e:
        if getattr(e, "user_facing", False):
            raise
        raise CheckpointError(f"{source}: {name} checkpoint: {e}") from None


def _read_from_shapes(shapes: WeightShapes, generation: str, tied: bool, given: dict, source: object) -> dict:
    """The config fields (the generation's names) the weights fix."""
    if generation == "v1":
        read: dict[str, Any] = dict(dim=shapes.dim, n_layers=shapes.n_layers, vocab_size=shapes.vocab_size,
                                    hidden_dim=shapes.ffn, use_moe=shapes.use_moe)
        if shapes.use_moe:
            read.update(n_routed_experts=shapes.n_experts, n_shared_experts=shapes.n_shared > 0)
        return read
    read = dict(hidden_size=shapes.dim, num_hidden_layers=shapes.n_layers, vocab_size=shapes.vocab_size,
                use_moe=shapes.use_moe)
    name = GENERATIONS[generation]
    if generation == "gen3":
        assert shapes.head_dim is not None  # q_norm is how gen3 was told
        read.update(head_dim=shapes.head_dim, num_attention_heads=shapes.q_rows // shapes.head_dim,
                    num_key_value_heads=shapes.kv_rows // shapes.head_dim, tie_word_embeddings=tied)
        read["moe_intermediate_size" if shapes.use_moe else "intermediate_size"] = shapes.ffn
        if shapes.use_moe:
            read["num_experts"] = shapes.n_experts
        return read
    # MiniMind2: head_dim = hidden_size / num_attention_heads, which only the caller knows.
    heads = int(given.get("num_attention_heads", 8))
    head_dim = shapes.dim // heads if heads > 0 and shapes.dim % heads == 0 else 0
    kv_heads = shapes.kv_rows // head_dim if head_dim and shapes.kv_rows % head_dim == 0 else 0
    if shapes.q_rows != shapes.dim or not kv_heads or heads % kv_heads:
        raise CheckpointError(f"{source}: this {name} checkpoint's attention ({shapes.q_rows} query and "
                              f"{shapes.kv_rows} key rows, hidden size {shapes.dim}) does not fit "
                              f"num_attention_heads={heads}; pass the --num_attention_heads it was trained with")
    read.update(num_key_value_heads=kv_heads, intermediate_size=shapes.ffn)
    if shapes.use_moe:
        read.update(n_routed_experts=shapes.n_experts, n_shared_experts=shapes.n_shared)
    return read


def _differs(given: Any, value: Any) -> bool:
    if isinstance(value, bool):  # upstream's flags give 0/1
        return bool(given) != value
    return given != value


def _fill_tied(state_dict: dict[str, torch.Tensor], generation: str, source: object) -> bool:
    """Whether the input embedding is the output projection; a tied matrix stored under one of its two keys
    is put under the other too. Only minimind-3 may untie them."""
    embed, output = ("tok_embeddings.weight", "output.weight") if generation == "v1" else \
        ("model.embed_tokens.weight", "lm_head.weight")
    if embed not in state_dict or output not in state_dict:
        present = state_dict.get(embed, state_dict.get(output))
        if present is not None:  # (with neither, WeightShapes says it is no MiniMind checkpoint)
            state_dict.setdefault(embed, present)
            state_dict.setdefault(output, present)
        return True
    if state_dict[embed] is state_dict[output] or torch.equal(state_dict[embed], state_dict[output]):
        return True
    if generation != "gen3":
        raise CheckpointError(f"{source}: {output} differs from {embed}, but {GENERATIONS[generation]} ties the "
                              f"two; the file is damaged or from another model")
    return False


def _flags(generation: str) -> str:
    if generation == "v1":
        return "--dim/--n_layers/--use_moe"
    return "--hidden_size/--num_hidden_layers/--use_moe"


def read_hf_folder(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, config.json) of a MiniMind2 / minimind-3 Hugging Face folder. Its Python files (the
    model code transformers would run with trust_remote_code) are never imported."""
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{config_path}: missing; a Hugging Face model folder has a config.json") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config_path}: not readable JSON ({e})") from None
    if not isinstance(config, dict) or config.get("model_type") != "minimind":
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{config_path}: model_type is {kind!r}, not 'minimind': not a MiniMind folder "
                              f"(`minimind-tui import` converts Llama-format folders)")
    return _read_hf_weights(folder), config


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    single, index, binary = folder / "model.safetensors", folder / "model.safetensors.index.json", \
        folder / "pytorch_model.bin"
    try:
        if single.is_file():
            return load_file(str(single))
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            return {k: v for shard in shards for k, v in load_file(str(folder / shard)).items()}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{folder}: its safetensors weights cannot be read ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}); download them again") from None
    if binary.is_file():
        return load_state_dict(binary)
    raise CheckpointError(f"{folder}: no model.safetensors or pytorch_model.bin; download the weights too")


def weights_dtype(generation: str) -> torch.dtype:
    """The dtype of a generation's weights files: v1 saves its fp32 state_dict(), MiniMind2 and minimind-3
    `{k: v.half()}`."""
    return torch.float32 if generation == "v1" else torch.float16


def minimind_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights as the model's generation's own trainer writes out/*.pth: v1 `state_dict()` in fp32 under
    v1's names; MiniMind2 / minimind-3 `{k: v.half()}` under theirs (the tied matrix under both of its keys,
    as they store it; RoPE tables are not saved), so upstream's class loads it with strict=True. An attached
    LoRA adapter is left out, as upstream's merge_lora leaves its keys out: save_lora writes it, merge_lora
    folds it into the weights first (model/lora.py)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile'd
    model = getattr(model, "module", model)      # DDP
    weights = {k: v for k, v in model.state_dict().items() if ".lora." not in k}
    return in_generation_format(weights, str(model.generation))


def in_generation_format(state_dict: dict[str, torch.Tensor], generation: str) -> dict[str, torch.Tensor]:
    """A state dict (already under the generation's key names) in the dtype its trainer saves (weights_dtype);
    on the CPU."""
    dtype = weights_dtype(generation)
    return {k: v.detach().to(device="cpu", dtype=dtype) for k, v in state_dict.items()}


def save_minimind(model: torch.nn.Module, path) -> None:
    """Write minimind_state_dict(model) to `path`, atomically (a crash leaves the old file or none)."""
    save_atomic(minimind_state_dict(model), path)
