"""Safe checkpoint I/O: MiniMind-compatible plain state dicts, loaded with weights_only=True only."""
from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from dataset.atomic import write_atomic

from .config import LMConfig


class CheckpointError(ValueError):
    user_facing = True


def load_state_dict(path) -> dict[str, torch.Tensor]:
    """Load a .pth state dict. Never unpickles code: a file that needs it is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted copy or download?); copy it again")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol chatter; the error below says what matters
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "Unsupported" in line),
                      _first_line(e))
        if "GLOBAL" in detail:  # the file names Python code to run while loading
            raise CheckpointError(
                f"{path}: refused: this file needs arbitrary Python code to load (weights_only=True rejected it: "
                f"{detail[:200]}). Only load checkpoints you trust, re-saved as a plain state dict.") from None
        raise CheckpointError(f"{path}: not a torch checkpoint (a plain pickle, or another format: {detail[:200]}); "
                              f"MiniMind's weights are saved with torch.save") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes the unpickler raise
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{type(e).__name__}: {_first_line(e)}") from None
    # Full training states keep the weights under "model"; plain MiniMind files are the dict itself.
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a model state dict (found {type(obj).__name__})")
    # Checkpoints saved from torch.compile'd or DDP-wrapped models carry a prefix.
    return {re.sub(r"^(_orig_mod\.|module\.)+", "", k): v for k, v in obj.items()}


def _first_line(e: BaseException) -> str:
    lines = str(e).splitlines()
    return lines[0][:200] if lines else "no details"


def save_atomic(obj, path) -> None:
    """torch.save through dataset.atomic: a crash never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: torch.save(obj, f))


def sha256(path) -> str:
    """The file's SHA-256 in hex: what meta.json records for each checkpoint file, checked before use."""
    # Read in 1 MiB blocks (hashlib.file_digest would do this, but needs Python 3.11).
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def infer_config(state_dict: dict[str, torch.Tensor], **overrides) -> LMConfig:
    """dim, layers, vocab, FFN width and MoE layout from tensor shapes; heads from overrides or defaults."""
    try:
        vocab, dim = state_dict["tok_embeddings.weight"].shape
    except KeyError:
        raise CheckpointError("not a MiniMind checkpoint: no tok_embeddings.weight") from None
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k))}
    use_moe = any(".feed_forward.experts." in k for k in state_dict)
    w1 = next(v for k, v in state_dict.items() if k.endswith("feed_forward.w1.weight")
              or k.endswith("feed_forward.experts.0.w1.weight"))
    fields: dict[str, Any] = dict(dim=dim, vocab_size=vocab, n_layers=len(layers), hidden_dim=w1.shape[0],
                                  use_moe=use_moe)
    if use_moe:
        fields["n_routed_experts"] = state_dict["layers.0.feed_forward.gate.weight"].shape[0]
        fields["n_shared_experts"] = any(".shared_experts." in k for k in state_dict)
    n_heads = overrides.get("n_heads", LMConfig.n_heads)
    head_dim = dim // n_heads
    fields["n_kv_heads"] = state_dict["layers.0.attention.wk.weight"].shape[0] // head_dim
    fields.update(overrides)
    return LMConfig(**fields)


def load_model(path, device="cpu", **config_overrides):
    """A MiniMindLM from any MiniMind-style weights file, config inferred from the shapes."""
    from .model import MiniMindLM

    sd = load_state_dict(path)
    config = infer_config(sd, **config_overrides)
    model = MiniMindLM(config)
    missing, _ = check_compatible(model, sd, path)
    if missing:
        raise CheckpointError(f"{path}: missing weights {', '.join(missing[:5])}"
                              f"{' …' if len(missing) > 5 else ''}; is this a MiniMind checkpoint?")
    model.load_state_dict(sd, strict=False)
    return model.to(device).eval()


def check_compatible(model, state_dict, path) -> tuple[list[str], list[str]]:
    """Shape mismatches are an error naming the key and both shapes; returns (missing, unexpected)."""
    own = model.state_dict()
    for k, v in state_dict.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)} in the file but the model expects "
                                  f"{tuple(own[k].shape)}; check --dim/--n_layers/--use_moe")
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    return missing, unexpected
