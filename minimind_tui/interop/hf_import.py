"""Turn a Hugging Face model directory back into a native MiniMind checkpoint (.pth state dict).

Accepts Llama-format directories (our own export, or any dense Llama with MiniMind's shape: tied
embeddings, SwiGLU, no biases) and MiniMind's own transformers layout with native weight names.
Weights are read from model.safetensors (or its shards), or from pytorch_model.bin with weights_only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from model.checkpoint import CheckpointError, check_compatible, load_state_dict, save_atomic
from model.config import LMConfig

from .errors import InteropError
from .llama_layout import config_from_llama, from_hf_state_dict
from .safetensors_io import load_safetensors


@dataclass
class ImportResult:
    path: Path
    config: LMConfig
    layout: str  # "llama" or "minimind"


def import_hf(hf_dir, out_path, *, force: bool = False) -> ImportResult:
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if not hf_dir.is_dir():
        raise InteropError(f"{hf_dir}: not a directory; pass a Hugging Face model folder (config.json + weights)")
    cfg = read_config(hf_dir / "config.json")
    weights = read_weights(hf_dir)
    if "tok_embeddings.weight" in weights:  # MiniMind's own transformers class keeps native names
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
    _check(sd, config, hf_dir)
    if out_path.exists() and not force:
        raise InteropError(f"{out_path}: already exists; choose another --out or pass --force to overwrite")
    save_atomic(sd, out_path)
    return ImportResult(path=out_path, config=config, layout=layout)


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


def _check(sd, config: LMConfig, hf_dir: Path) -> None:
    from model.model import MiniMindLM

    with torch.device("meta"):
        model = MiniMindLM(config)
    try:
        missing, unexpected = check_compatible(model, sd, hf_dir)
    except CheckpointError as e:
        raise InteropError(str(e)) from None
    if missing or unexpected:
        what, names = ("missing", missing) if missing else ("unexpected", unexpected)
        raise InteropError(f"{hf_dir}: {what} weights {', '.join(names[:5])}; the config and weights disagree")
