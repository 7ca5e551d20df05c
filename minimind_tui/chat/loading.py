"""Everything needed before the first token: which weights, which tokenizer, which device.

Imports torch (through `model`): use it from the CLI or inside a worker thread, never at app start-up.
"""
from __future__ import annotations

import os
from pathlib import Path

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.tokenizer_choice import choose_tokenizer_dir, damaged_meta, recorded_meta

from .settings import EVAL_DEFAULTS, GenerationSettings, mode_for_training_mode

# Config fields a checkpoint's shapes cannot tell; taken from its meta.json when recorded (v1's names; the
# same fields under MiniMind2's / minimind-3's names for their checkpoints).
_UNINFERABLE = ("n_heads", "n_kv_heads", "max_seq_len", "rope_theta", "norm_eps", "num_experts_per_tok",
                "norm_topk_prob", "scoring_func")
_UNINFERABLE_UPSTREAM = ("num_attention_heads", "num_key_value_heads", "max_position_embeddings", "rope_theta",
                         "rms_norm_eps", "num_experts_per_tok", "norm_topk_prob", "scoring_func")


HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_model_folder(path) -> bool:
    """A Hugging Face model folder (config.json beside its weights), as MiniMind2 / minimind-3 publish them;
    a run folder also has a config.json, but no weights beside it."""
    path = Path(path)
    return (path / "config.json").is_file() and any((path / name).is_file() for name in HF_WEIGHTS)


def eval_weights(save_dir: Path, weight: str, hidden_size: int | None, use_moe: bool,
                 generation: str | None = None) -> Path:
    """MiniMind2's / minimind-3's eval_llm.py file, `{save_dir}/{weight}_{hidden_size}[_moe].pth` (v1's
    eval_model.py names its files the same way). Without a hidden size: the one the eval script of
    `generation` (told by the tokenizer) defaults to when that file exists, else another generation's
    default that exists, else the first."""
    def named(size: int) -> Path:
        return Path(save_dir) / f"{weight}_{size}{'_moe' if use_moe else ''}.pth"

    if hidden_size:
        return named(hidden_size)
    sizes = [EVAL_DEFAULTS[generation]["hidden_size"]] if generation in EVAL_DEFAULTS else []
    sizes += [d["hidden_size"] for d in EVAL_DEFAULTS.values() if d["hidden_size"] not in sizes]
    return next((named(size) for size in sizes if named(size).is_file()), named(sizes[0]))


def weights_for_mode(out_dir: Path, model_mode: int, dim: int, use_moe: bool) -> Path:
    """MiniMind's eval_model.py naming: 0 -> pretrain_{dim}[_moe].pth, 1 -> full_sft_{dim}[_moe].pth."""
    modes = {0: "pretrain", 1: "sft"}
    if model_mode not in modes:
        raise UserError(f"--model_mode {model_mode}: use 0 (pretrained, continuation) or 1 (SFT, chat), "
                        f"or name a file with --ckpt PATH")
    return Path(out_dir) / layout.weights_name(modes[model_mode], dim, use_moe)


def checkpoint_meta(weights: Path) -> dict:
    """What our trainer recorded about these weights (mode, config, tokenizer); {} for foreign files."""
    return recorded_meta(Path(weights))


def verify_checksum(weights: Path) -> None:
    """A run checkpoint's weights must match the sha256 its meta.json recorded: a truncated or bit-flipped
    file is refused by name, as resume refuses it, instead of chatting with damaged weights."""
    from model.checkpoint import sha256

    damaged = damaged_meta(weights)
    if damaged:
        raise UserError(f"{damaged}: damaged (not a JSON object), so {weights.name} cannot be checked; pick an "
                        f"earlier checkpoint of the run, or the run folder (its newest sound checkpoint)")
    digests = (layout.read_json(weights.parent / layout.META_FILE) or {}).get("sha256")
    recorded = digests.get(weights.name) if isinstance(digests, dict) else None
    if recorded and sha256(weights) != recorded:
        raise UserError(f"{weights}: checksum mismatch (truncated or corrupted on disk); pick an earlier "
                        f"checkpoint of the run")


def resolve_tokenizer_dir(weights: Path, root: Path, explicit: str | Path | None = None,
                          meta: dict | None = None) -> tuple[Path, str]:
    """(directory, why it was chosen), by the trainer's rule (minimind_tui.tokenizer_choice)."""
    if explicit:
        return Path(explicit), "--tokenizer"  # as typed: relative to where chat was started
    return choose_tokenizer_dir(root, None, weights=Path(weights), meta=meta)


def pick_device(requested: str | None = None) -> str:
    """The requested device, else CUDA when present (a small model fits next to a training run), else CPU."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {requested}: CUDA is not available here; use --device cpu")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def inference_threads(cpus: int, load: float) -> int:
    """CPU threads for generating next to whatever else runs: the cores the host's load leaves free, at least
    one. Generation waits for its slowest thread at every token, so a thread sharing a core with a busy trainer
    stalls all of them: chat next to a training run went from ~600 tokens/s on one thread to 10-80 on two."""
    return max(1, min(cpus, int(cpus - load + 0.5)))


def use_inference_threads() -> int:
    """Set torch's intra-op threads from the host's 1-minute load and the cores this process may use."""
    import psutil
    import torch

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = psutil.cpu_count() or 1
    threads = inference_threads(cpus, psutil.getloadavg()[0])
    torch.set_num_threads(threads)
    return threads


def recorded_config(meta: dict) -> dict:
    """What the shapes cannot tell, from the config our trainer recorded in meta.json (LMConfig's fields),
    under the names load_minimind takes for the checkpoint's generation."""
    recorded = meta.get("config") or {}
    if not isinstance(recorded, dict):
        return {}
    generation = recorded.get("generation", "v1")
    if generation == "v1":
        return {k: recorded[k] for k in _UNINFERABLE if k in recorded}
    from model.config import LMConfig, config_fields, upstream_config

    try:
        named = upstream_config(LMConfig.from_dict(recorded))
    except (TypeError, ValueError):
        return {}  # a hand-edited meta.json: the shapes and the defaults decide, as for a foreign file
    return {k: named[k] for k in _UNINFERABLE_UPSTREAM if k in named and k in config_fields(generation)}


def check_weights_file(weights: Path) -> None:
    """A missing file, or a run checkpoint whose checksum does not match, is refused by name. A MiniMind2 /
    minimind-3 Hugging Face folder passes (it has no checksums of ours)."""
    weights = Path(weights)
    if is_model_folder(weights):
        return
    if not weights.is_file():
        raise UserError(f"{weights}: no such weights file; train one first, or pick another with --ckpt PATH "
                        f"(found under out/ and runs/: `minimind-tui runs`)")
    verify_checksum(weights)


def load_weights(weights: Path, device: str = "cpu", meta: dict | None = None, config: dict | None = None):
    """The model of a (checked) weights file or Hugging Face folder, with the settings its shapes cannot tell
    taken from what our trainer recorded (`meta`: checkpoint_meta(weights), read when not given), then from
    `config` (what load_minimind takes besides: sizes to check, inference_rope_scaling)."""
    from model.checkpoint import load_model

    if meta is None:
        meta = {} if is_model_folder(weights) else checkpoint_meta(weights)
    return load_model(weights, device=device, **{**recorded_config(meta), **(config or {})})


def load_session(weights: Path, root: Path = Path("."), tokenizer_dir: str | Path | None = None,
                 device: str | None = None, mode: str | None = None,
                 settings: GenerationSettings | None = None, lora: str | Path | None = None,
                 config: dict | None = None):
    """A ready ChatSession for a weights file, or a MiniMind2 / minimind-3 Hugging Face folder. Refuses a
    tokenizer whose vocabulary does not fit the model.
    lora: a LoRA adapter put on the model, unmerged: a file, or a NAME looked up beside the weights as the
    model's generation's chat script does (--lora_weight; model.lora.find_lora_weights).
    config: what load_minimind takes besides (sizes to check, inference_rope_scaling)."""
    from model import Tokenizer

    from .session import ChatSession

    weights = Path(weights)
    check_weights_file(weights)
    meta = {} if is_model_folder(weights) else checkpoint_meta(weights)
    tok_dir, why = resolve_tokenizer_dir(weights, root, tokenizer_dir, meta)
    tokenizer = Tokenizer.from_dir(tok_dir)
    device = pick_device(device)
    if device == "cpu":
        use_inference_threads()
    model = load_weights(weights, device, meta, config)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise UserError(f"{tok_dir}: this tokenizer has {tokenizer.vocab_size} tokens but {weights.name} was "
                        f"trained with {model.config.vocab_size}; pass --tokenizer DIR naming the tokenizer "
                        f"the model was trained with")
    mode = mode or mode_for_training_mode(meta.get("mode"), weights.name)
    session = ChatSession(model, tokenizer, device=device, mode=mode, settings=settings or GenerationSettings(),
                          weights=weights, tokenizer_note=f"{tok_dir} ({why})")
    if lora:
        from model.lora import find_lora_weights

        c = model.config
        session.use_adapter(find_lora_weights(lora, weights.parent, model.generation, c.dim, c.use_moe))
    return session
