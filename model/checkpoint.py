"""Safe checkpoint I/O: MiniMind-compatible plain state dicts, loaded with weights_only=True only."""
from __future__ import annotations

import errno
import hashlib
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dataset.atomic import write_atomic

from .config import LMConfig


class CheckpointError(ValueError):
    user_facing = True


def load_state_dict(path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Load a .pth state dict. Never unpickles code: a file that needs it is refused. mmap: map the tensors
    from the file instead of reading them (to look at keys and shapes of a large file cheaply)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted copy or download?); copy it again")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol chatter; the error below says what matters
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
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
    """torch.save through dataset.atomic: a crash never leaves a partial file; a full disk is an OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: save_to(obj, f))


def save_to(obj, f) -> None:
    """torch.save into the open file `f`. Its zip writer reports a file that refused its bytes (a full disk)
    as a RuntimeError ("unexpected pos 1600 vs 1494") with the file's OSError only in its context: that
    OSError is raised instead, so callers that handle a refusing disk (OSError) handle this one too."""
    try:
        torch.save(obj, f)
    except RuntimeError as e:
        raise write_error(e) from None


def write_error(error: RuntimeError) -> OSError:
    """The OSError behind torch.save's RuntimeError, or one made from its message when there is none."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError):
            return cause
        cause = cause.__cause__ or cause.__context__
    first = (str(error).splitlines() or ["no details"])[0][:200]
    return OSError(errno.EIO, f"torch.save could not write the file ({first})")


def sha256(path) -> str:
    """The file's SHA-256 in hex: what meta.json records for each checkpoint file, checked before use."""
    # Read in 1 MiB blocks (hashlib.file_digest would do this, but needs Python 3.11).
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class WeightShapes:
    """What a state dict's tensor shapes say about its network (read from v1's key names)."""
    dim: int
    vocab_size: int
    n_layers: int
    ffn: int                # the feed-forward's (or each expert's) width
    q_rows: int             # wq's outputs: n_heads * head_dim
    kv_rows: int            # wk's outputs: n_kv_heads * head_dim
    head_dim: int | None    # q_norm's size (minimind-3); None when the shapes do not say it
    use_moe: bool
    n_experts: int          # routed experts (MoE)
    n_shared: int           # shared experts (MoE)

    @classmethod
    def of(cls, state_dict: dict[str, torch.Tensor], source: object = "") -> WeightShapes:
        """Read from a state dict with v1's key names (key_names.v1_key renames the others' keys)."""
        where = f"{source}: " if source else ""
        embedding = state_dict.get("tok_embeddings.weight", state_dict.get("output.weight"))
        if embedding is None:
            raise CheckpointError(f"{where}not a MiniMind checkpoint: no tok_embeddings.weight "
                                  f"(model.embed_tokens.weight)")
        layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k))}
        try:
            ffn = next(v for k, v in state_dict.items() if re.fullmatch(
                r"layers\.0\.feed_forward\.(experts\.0\.)?w1\.weight", k))
            q, kv = state_dict["layers.0.attention.wq.weight"], state_dict["layers.0.attention.wk.weight"]
        except (StopIteration, KeyError):
            raise CheckpointError(f"{where}not a complete MiniMind checkpoint: layer 0's attention or "
                                  f"feed-forward weights are missing") from None
        q_norm = state_dict.get("layers.0.attention.q_norm.weight")
        experts = {int(m.group(1)) for k in state_dict
                   if (m := re.match(r"layers\.0\.feed_forward\.experts\.(\d+)\.", k))}
        shared = {m.group(1) for k in state_dict
                  if (m := re.match(r"layers\.0\.feed_forward\.shared_experts\.(\d+\.)?w1\.", k))}
        vocab, dim = embedding.shape
        return cls(dim=dim, vocab_size=vocab, n_layers=len(layers), ffn=ffn.shape[0], q_rows=q.shape[0],
                   kv_rows=kv.shape[0], head_dim=None if q_norm is None else q_norm.shape[0],
                   use_moe=bool(experts), n_experts=len(experts), n_shared=len(shared))


def infer_config(state_dict: dict[str, torch.Tensor], **overrides) -> LMConfig:
    """A v1 checkpoint's config: dim, layers, vocab, FFN width and MoE layout from tensor shapes; heads from
    overrides or defaults (overrides win; model.generations.load_minimind checks them against the shapes)."""
    shapes = WeightShapes.of(state_dict)
    fields: dict[str, Any] = dict(dim=shapes.dim, vocab_size=shapes.vocab_size, n_layers=shapes.n_layers,
                                  hidden_dim=shapes.ffn, use_moe=shapes.use_moe)
    if shapes.use_moe:
        fields["n_routed_experts"] = shapes.n_experts
        fields["n_shared_experts"] = shapes.n_shared > 0
    n_heads = overrides.get("n_heads", LMConfig.n_heads)
    head_dim = shapes.dim // n_heads
    fields["n_kv_heads"] = shapes.kv_rows // head_dim
    fields.update(overrides)
    return LMConfig(**fields)


def load_model(path, device="cpu", **config_overrides):
    """A MiniMindLM from any MiniMind weights file or folder, config inferred from the shapes (see
    model.generations.load_minimind, which this is)."""
    from .generations import load_minimind

    return load_minimind(path, device=device, **config_overrides)


def check_compatible(model, state_dict, path, flags: str = "--dim/--n_layers/--use_moe") -> tuple[list[str], list[str]]:
    """Shape mismatches are an error naming the key, both shapes and the `flags` to check; returns
    (missing, unexpected)."""
    own = model.state_dict()
    for k, v in state_dict.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)} in the file but the model expects "
                                  f"{tuple(own[k].shape)}; check {flags}")
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    return missing, unexpected
