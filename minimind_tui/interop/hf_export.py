"""Write a MiniMind checkpoint as a Hugging Face directory that transformers loads without remote code.

v1 and MiniMind2 dense become LlamaForCausalLM, minimind-3 Qwen3ForCausalLM, minimind-3's MoE
Qwen3MoeForCausalLM and MiniMind2's MoE Qwen2MoeForCausalLM (hf_architectures.py says why each is exact).

out/
    config.json              the architecture's config (dims inferred from the weights' shapes)
    model.safetensors        weights (v1: q/k rows permuted for HF's rotate_half RoPE, see llama_layout.py)
    generation_config.json   bos/eos/pad ids and MiniMind's sampling defaults
    tokenizer.json           copied from the tokenizer directory
    tokenizer_config.json    special tokens and the chat template (Jinja), for AutoTokenizer
    special_tokens_map.json
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dataset.atomic import write_atomic
from model import key_names
from model.checkpoint import CheckpointError, check_compatible, infer_config, load_state_dict
from model.config import GENERATIONS, LMConfig
from model.generations import config_for_weights
from model.tokenizer import DEFAULT_SYSTEM_PROMPT, Tokenizer

from . import hf_architectures
from .errors import InteropError
from .llama_layout import llama_config, to_hf_state_dict
from .safetensors_io import save_safetensors

# MiniMind's chat format as a Jinja template, for tokenizers that come without one. It renders exactly
# what model.tokenizer.render_chat renders (a default system prompt; the assistant header after every
# user turn), with the tokenizer's own bos/eos tokens.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ bos_token + 'system\\n' + messages[0]['content'] + eos_token + '\\n' }}"
    "{% else %}"
    "{{ bos_token + 'system\\n" + DEFAULT_SYSTEM_PROMPT + "' + eos_token + '\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + 'user\\n' + message['content'] + eos_token + '\\n' + bos_token + 'assistant\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
)

# Sampling defaults of each generation's own chat script (eval_model.py / eval_llm.py).
GENERATION_DEFAULTS = {"do_sample": True, "temperature": 0.85, "top_p": 0.85}
SAMPLING = {"v1": GENERATION_DEFAULTS, "gen2": GENERATION_DEFAULTS, "gen3": {**GENERATION_DEFAULTS, "top_p": 0.95}}
# Export flags (v1's names, upstream's as aliases) -> MiniMind2's / minimind-3's config names.
UPSTREAM_NAMES = {"n_heads": "num_attention_heads", "n_kv_heads": "num_key_value_heads", "rope_theta": "rope_theta",
                  "norm_eps": "rms_norm_eps", "max_seq_len": "max_position_embeddings",
                  "num_experts_per_tok": "num_experts_per_tok", "norm_topk_prob": "norm_topk_prob"}
# What `download` fetches for each generation's tokenizer, for the hint when it is missing or mismatched.
TOKENIZER_DOWNLOAD = {"v1": "tokenizer", "gen2": "tokenizer", "gen3": "tokenizer-3"}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
OUTPUT_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class ExportResult:
    out_dir: Path
    config: LMConfig
    n_params: int
    dtype: torch.dtype
    tokenizer_dir: Path
    architecture: str = "LlamaForCausalLM"  # the transformers class that loads it


def export_hf(checkpoint, out_dir, tokenizer_dir=None, *, n_heads: int | None = None,
              n_kv_heads: int | None = None, rope_theta: float | None = None, max_seq_len: int | None = None,
              norm_eps: float | None = None, num_experts_per_tok: int | None = None, dtype: str = "auto",
              force: bool = False) -> ExportResult:
    checkpoint, out_dir = weights_file(checkpoint), Path(out_dir)
    from minimind_tui.tokenizer_choice import damaged_meta

    damaged = damaged_meta(checkpoint)
    if damaged:  # its model settings are lost: defaults could describe other heads with the same shapes
        raise InteropError(f"{damaged}: damaged (not a JSON object), so the settings of {checkpoint.name} are "
                           f"unknown; export an earlier checkpoint of the run")
    sd = load_state_dict(checkpoint)
    generation = key_names.detect_generation(sd)
    if generation is None:
        raise InteropError(f"{checkpoint}: not a MiniMind checkpoint (neither tok_embeddings.weight nor "
                           f"model.embed_tokens.weight among its {len(sd)} keys)")
    hints = _run_hints(checkpoint, generation)
    flags = dict(n_heads=n_heads, n_kv_heads=n_kv_heads, rope_theta=rope_theta, max_seq_len=max_seq_len,
                 norm_eps=norm_eps, num_experts_per_tok=num_experts_per_tok)
    if generation == "v1":
        overrides = {k: v for k, v in hints.items() if k in UPSTREAM_NAMES}
        overrides.update({k: v for k, v in flags.items() if v is not None})
        config = _infer(sd, checkpoint, overrides)
        hf_sd = to_hf_state_dict(sd, config, checkpoint)  # refuses MoE with an explanation
        kind = "llama"
    else:
        config = _generation_config(sd, generation, checkpoint, hints, flags)
        kind = hf_architectures.model_type(config, checkpoint)  # refuses what no standard class computes
        hf_sd = hf_architectures.to_hf_state_dict(sd, config, kind)
    _check_weights(sd, config, checkpoint)

    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir else hints.get("tokenizer_dir")
    if tokenizer_dir is None:
        raise InteropError(f"{checkpoint}: no tokenizer recorded for this checkpoint and none in "
                           f"./{_default_tokenizer(generation)}; pass --tokenizer DIR (the directory with "
                           f"tokenizer.json the model was trained with)")
    tokenizer = Tokenizer.from_dir(tokenizer_dir)
    _check_tokenizer(tokenizer, Path(tokenizer_dir), config, checkpoint)

    target = _target_dtype(sd, dtype)
    hf_sd = {k: v.to(target) if v.is_floating_point() else v for k, v in hf_sd.items()}
    _prepare_out_dir(out_dir, force)
    save_safetensors(hf_sd, out_dir / "model.safetensors", metadata={"format": "pt"})
    ids = dict(bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)
    if kind == "llama" and generation == "v1":
        hf_config = {**llama_config(config, dtype=target, **ids), hf_architectures.GENERATION_KEY: "v1"}
    else:
        hf_config = hf_architectures.hf_config(config, kind, dtype=target, **ids)
    _write_json(out_dir / "config.json", hf_config)
    _write_json(out_dir / "generation_config.json",
                {"bos_token_id": ids["bos_id"], "eos_token_id": ids["eos_id"], "pad_token_id": ids["pad_id"],
                 **SAMPLING[generation]})
    _write_tokenizer(tokenizer, Path(tokenizer_dir), out_dir, config)
    n_params = sum(v.numel() for v in hf_sd.values())
    return ExportResult(out_dir=out_dir, config=config, n_params=n_params, dtype=target,
                        tokenizer_dir=Path(tokenizer_dir), architecture=hf_architectures.ARCHITECTURES[kind])


def _generation_config(sd, generation: str, checkpoint: Path, hints: dict, flags: dict) -> LMConfig:
    """A MiniMind2 / minimind-3 checkpoint's config: shapes, then what the trainer recorded, then the flags
    (in the generation's own names), the generation's defaults for the rest. Fills in a tied matrix stored
    under one key only."""
    given = {UPSTREAM_NAMES[k]: v for k, v in hints.items() if k in UPSTREAM_NAMES} \
        if hints.get("generation") == generation else {}
    given.update({UPSTREAM_NAMES[k]: v for k, v in flags.items() if v is not None})
    return config_for_weights(sd, generation, checkpoint, **given)


def _default_tokenizer(generation: str) -> Path:
    """Where `download` puts the generation's tokenizer: minimind-3's apart from MiniMind2's."""
    from minimind_tui.tokenizer_choice import MINIMIND3_TOKENIZER, MINIMIND_TOKENIZER

    return MINIMIND3_TOKENIZER if generation == "gen3" else MINIMIND_TOKENIZER


def _check_tokenizer(tokenizer: Tokenizer, tokenizer_dir: Path, config: LMConfig, checkpoint: Path) -> None:
    """The tokenizer goes into the export: it must be the model's (its vocabulary and, for MiniMind2 and
    minimind-3, its own chat template)."""
    if tokenizer.vocab_size > config.vocab_size:
        raise InteropError(f"{tokenizer_dir}: tokenizer has {tokenizer.vocab_size} tokens but the model's "
                           f"embedding has {config.vocab_size} rows; pass the tokenizer it was trained with")
    generation, name = config.generation, GENERATIONS[config.generation]
    fetch = f"`minimind-tui download {TOKENIZER_DOWNLOAD[generation]}`"
    # minimind-3's BPE is another vocabulary; v1's and MiniMind2's share theirs.
    if (tokenizer.generation == "gen3") != (generation == "gen3"):
        raise InteropError(f"{tokenizer_dir}: a {tokenizer.generation_name} tokenizer, but {checkpoint} holds "
                           f"{name} weights (another vocabulary); pass --tokenizer DIR with {name}'s ({fetch})")
    if generation != "v1" and not tokenizer.config.get("chat_template"):
        raise InteropError(f"{tokenizer_dir / 'tokenizer_config.json'}: no chat_template; the export needs "
                           f"{name}'s own, which its tokenizer folder has ({fetch})")


def weights_file(checkpoint) -> Path:
    """A .pth, or the weights a checkpoint folder or a run folder holds (its newest complete checkpoint)."""
    from minimind_tui.tokenizer_choice import find_weights

    found = find_weights(checkpoint)
    if found is None:
        raise InteropError(f"{checkpoint}: no model.pth and no complete checkpoint inside")
    return found


def _infer(sd, checkpoint: Path, overrides: dict) -> LMConfig:
    try:
        return infer_config(sd, **overrides)
    except (ValueError, ZeroDivisionError) as e:  # head counts that cannot fit these shapes
        if getattr(e, "user_facing", False):
            raise
        raise InteropError(f"{checkpoint}: {e}; pass the --n_heads/--n_kv_heads the model was trained with") from None


def _check_weights(sd, config: LMConfig, checkpoint: Path) -> None:
    from model.model import MiniMindLM

    with torch.device("meta"):  # shapes only: no memory, no random init
        model = MiniMindLM(config)
    try:
        missing, unexpected = check_compatible(model, sd, checkpoint)
    except CheckpointError as e:
        raise InteropError(f"{e} (for the head counts: --n_heads {config.n_heads} "
                           f"--n_kv_heads {config.n_kv_heads})") from None
    if missing or unexpected:
        names = (missing or unexpected)[:5]
        what = "missing" if missing else "unexpected"
        raise InteropError(f"{checkpoint}: {what} weights {', '.join(names)}; is this a MiniMind checkpoint?")


def _run_hints(checkpoint: Path, generation: str) -> dict:
    """Model settings and tokenizer the trainer recorded with this checkpoint (a run checkpoint's meta.json
    or the .meta.json sidecar of an out/*.pth); the generation's tokenizer folder as the tokenizer fallback."""
    from minimind_tui.tokenizer_choice import recorded_meta

    meta = recorded_meta(checkpoint)
    hints = dict(meta["config"]) if isinstance(meta.get("config"), dict) else {}
    recorded = meta.get("tokenizer")
    fallback = _default_tokenizer(generation)
    if isinstance(recorded, str) and (Path(recorded) / "tokenizer.json").is_file():
        hints["tokenizer_dir"] = Path(recorded)
    elif (fallback / "tokenizer.json").is_file():
        hints["tokenizer_dir"] = fallback
    return hints


def _target_dtype(sd, name: str) -> torch.dtype:
    if name == "auto":
        return next((v.dtype for v in sd.values() if v.is_floating_point()), torch.float32)
    if name not in DTYPES:
        raise InteropError(f"unknown dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InteropError(f"{out_dir}: exists and is not a directory")
    existing = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if existing and not force:
        raise InteropError(f"{out_dir}: already holds an export ({', '.join(existing)}); choose another --out "
                           f"or pass --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_tokenizer(tokenizer: Tokenizer, source: Path, out_dir: Path, config: LMConfig) -> None:
    _write_bytes(out_dir / "tokenizer.json", (source / "tokenizer.json").read_bytes())
    tc = {k: v for k, v in tokenizer.config.items()}
    tc.update({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token, "unk_token": tc.get("unk_token", "<unk>"),
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": config.max_seq_len,
    })
    # The source's own template (MiniMind ships one) wins; ours renders the same text otherwise.
    tc["chat_template"] = tokenizer.config.get("chat_template") or CHAT_TEMPLATE
    _write_json(out_dir / "tokenizer_config.json", tc)
    _write_json(out_dir / "special_tokens_map.json",
                {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token,
                 "pad_token": tokenizer.pad_token, "unk_token": tc["unk_token"]})


def _write_json(path: Path, obj) -> None:
    _write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    write_atomic(path, data)
