"""Turn a Hugging Face model directory back into a native MiniMind checkpoint (.pth state dict).

Accepts what `export` writes and what transformers saves of it: Llama folders (v1 by default, as always, or
MiniMind2 when the export recorded it or --generation says so; any dense Llama with MiniMind's shape: tied
embeddings, SwiGLU, no biases), Qwen3 and Qwen3-MoE (minimind-3), Qwen2-MoE (MiniMind2's MoE), MiniMind2's and
minimind-3's own transformers folders (model_type "minimind"), and v1's native weight names. MiniMind2 and
minimind-3 are written in their own format (save_minimind: fp16, their key names), which their trainers and
eval_llm.py load as they are. Weights are read from model.safetensors (or its shards), or from
pytorch_model.bin with weights_only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from model import key_names
from model.checkpoint import CheckpointError, check_compatible, load_state_dict, save_atomic
from model.config import GENERATION_CONFIGS, GENERATIONS, LMConfig, config_fields, upstream_config
from model.generations import config_for_weights, save_minimind

from . import hf_architectures
from .errors import InteropError
from .llama_layout import config_from_llama, from_hf_state_dict
from .safetensors_io import load_safetensors


@dataclass
class ImportResult:
    path: Path
    config: LMConfig
    layout: str  # "llama", "minimind", or the model_type read ("qwen3", "qwen3_moe", "qwen2_moe")


def import_hf(hf_dir, out_path, *, generation: str | None = None, force: bool = False) -> ImportResult:
    """generation: for a Llama folder, which MiniMind to write ("v1" or "gen2"; default: the one the export
    recorded, else v1); the other architectures tell it themselves."""
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if not hf_dir.is_dir():
        raise InteropError(f"{hf_dir}: not a directory; pass a Hugging Face model folder (config.json + weights)")
    cfg = read_config(hf_dir / "config.json")
    weights = read_weights(hf_dir)
    native = "tok_embeddings.weight" in weights  # MiniMind v1's own transformers class keeps v1's names
    target = "v1" if native else _generation(cfg, weights, generation, hf_dir / "config.json")
    if target != "v1":
        _refuse_overwrite(out_path, force)
        config = _write_generation(cfg, weights, target, hf_dir, out_path)
        return ImportResult(path=out_path, config=config, layout=str(cfg.get("model_type") or "llama"))
    if native:
        layout = "minimind"
        fields = {k: v for k, v in LMConfig.from_dict(cfg).to_dict().items() if k in LMConfig.__dataclass_fields__}
        fields.pop("extra", None)
        sd = dict(weights)
        output = sd.setdefault("output.weight", sd["tok_embeddings.weight"])
        if not torch.equal(output, sd["tok_embeddings.weight"]):
            raise InteropError(f"{hf_dir}: output.weight differs from tok_embeddings.weight; MiniMind ties the two")
    else:
        layout = "llama"
        fields = config_from_llama(cfg, str(hf_dir / "config.json"))
        sd = from_hf_state_dict(weights, fields["n_heads"], fields["n_kv_heads"], str(hf_dir))
    try:
        config = LMConfig(**fields)
    except (ValueError, TypeError) as e:
        raise InteropError(f"{hf_dir / 'config.json'}: {e}") from None
    if config.use_moe:
        raise InteropError(f"{hf_dir}: a mixture-of-experts model; import supports dense models only")
    from model.model import MiniMindLM

    with torch.device("meta"):
        model = MiniMindLM(config)
    _check(sd, model, hf_dir)
    _refuse_overwrite(out_path, force)
    save_atomic(sd, out_path)
    return ImportResult(path=out_path, config=config, layout=layout)


def _refuse_overwrite(out_path: Path, force: bool) -> None:
    if out_path.exists() and not force:
        raise InteropError(f"{out_path}: already exists; choose another --out or pass --force to overwrite")


def _generation(cfg: dict, weights: dict, requested: str | None, source: Path) -> str:
    """The generation the folder's weights become (hf_architectures.generation_of; MiniMind's own
    transformers folders by their key names)."""
    if cfg.get("model_type") == "minimind":
        told = key_names.detect_generation(weights) or "gen2"
        if requested is not None and requested != told:
            raise InteropError(f"{source}: these are {GENERATIONS[told]} weights (told by their key names); "
                               f"leave out --generation")
        return told
    return hf_architectures.generation_of(cfg, requested, source)


def _write_generation(cfg: dict, weights: dict, generation: str, hf_dir: Path, out_path: Path) -> LMConfig:
    """Write a MiniMind2 / minimind-3 checkpoint exactly as that generation's trainer does (save_minimind), after
    checking that its network computes the folder's model."""
    source = hf_dir / "config.json"
    if cfg.get("model_type") == "minimind":  # upstream's own folder: its config names are the generation's
        sd = dict(weights)
        fields = {k: v for k, v in cfg.items() if k in config_fields(generation)}
    else:
        sd = hf_architectures.from_hf_state_dict(weights, source)
        fields = hf_architectures.fields_from_hf(cfg, generation, source)
    try:
        config = config_for_weights(sd, generation, source, **fields)
    except CheckpointError as e:
        raise InteropError(str(e)) from None
    from model.model import MiniMindLM

    with torch.device("meta"):  # shapes only: the folder's tensors become the weights (assign=True)
        model = MiniMindLM(config)
    _check(sd, model, hf_dir, "--hidden_size/--num_hidden_layers")
    model.load_state_dict(sd, assign=True)
    save_minimind(model, out_path)
    return config


def settings_to_pass(config: LMConfig) -> list[str]:
    """Flags a model loaded from the written .pth needs: the settings no .pth records (its shapes cannot tell
    them) where they are not the generation's defaults, in the generation's own names."""
    if config.generation == "v1":
        names = ("n_heads", "rope_theta", "norm_eps")
        return [f"--{name} {getattr(config, name):g}" for name in names
                if getattr(config, name) != getattr(LMConfig, name)]
    ours = upstream_config(config)
    defaults = GENERATION_CONFIGS[config.generation]().to_dict()
    names = ["rope_theta", "rms_norm_eps"] + (["num_attention_heads"] if config.generation == "gen2" else [])
    if config.use_moe:
        names += ["num_experts_per_tok", "norm_topk_prob"]
    return [f"--{name} {ours[name]:g}" for name in names if ours[name] != defaults[name]]


def read_config(path: Path) -> dict:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InteropError(f"{path}: missing; a Hugging Face model folder has a config.json") from None
    except json.JSONDecodeError as e:
        raise InteropError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise InteropError(f"{path}: JSON nested too deeply; not a model config") from None
    if not isinstance(cfg, dict):
        raise InteropError(f"{path}: expected a JSON object")
    return cfg


def read_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    single, index = hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json"
    if single.is_file():
        return load_safetensors(single)[0]
    if index.is_file():
        tensors = {}
        for shard in _shards(index):
            if Path(shard).name != shard:  # a shard name must stay inside the folder
                raise InteropError(f"{index}: shard name {shard!r} is not a plain file name")
            tensors.update(load_safetensors(hf_dir / shard)[0])
        return tensors
    for name in ("pytorch_model.bin", "model.pth"):
        if (hf_dir / name).is_file():
            return load_state_dict(hf_dir / name)  # weights_only: refuses pickled code
    raise InteropError(f"{hf_dir}: no weights found (model.safetensors, model.safetensors.index.json or "
                       f"pytorch_model.bin)")


def _shards(index: Path) -> list[str]:
    """The shard file names a model.safetensors.index.json maps tensors to: {"weight_map": {tensor: file}}."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InteropError(f"{index}: not a valid shard index (no weight_map)") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise InteropError(f"{index}: not a valid shard index (weight_map must map each tensor name to a "
                           "shard file name)")
    return sorted(set(weight_map.values()))


def _check(sd, model, hf_dir: Path, flags: str = "--dim/--n_layers/--use_moe") -> None:
    try:
        missing, unexpected = check_compatible(model, sd, hf_dir, flags)
    except CheckpointError as e:
        raise InteropError(str(e)) from None
    if missing or unexpected:
        what, names = ("missing", missing) if missing else ("unexpected", unexpected)
        raise InteropError(f"{hf_dir}: {what} weights {', '.join(names[:5])}; the config and weights disagree")
