"""Choosing the tokenizer, building the model, and loading --init weights."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from model import LMConfig, MiniMindLM, Tokenizer
from model.checkpoint import CheckpointError, check_compatible, load_state_dict

MINIMIND_TOKENIZER = Path("model") / "minimind_tokenizer"  # where a MiniMind checkout keeps its tokenizer


def sidecar_path(weights: Path) -> Path:
    """out/pretrain_512.pth -> out/pretrain_512.meta.json: what we know about a MiniMind-style file."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ".meta.json")


def init_weights_file(init: str | Path) -> Path:
    """--init may name a .pth file, a checkpoint folder, or a run folder (its newest complete checkpoint)."""
    path = Path(init)
    if path.is_dir():
        if (path / layout.MODEL_FILE).is_file():
            return path / layout.MODEL_FILE
        done = layout.complete_checkpoints(path)
        if done:
            return done[-1] / layout.MODEL_FILE
        raise CheckpointError(f"{path}: no model.pth and no complete checkpoint inside")
    return path


def recorded_meta(weights: Path) -> dict:
    """meta.json beside a run checkpoint's model.pth, or our sidecar beside an out/*.pth (if still current)."""
    weights = Path(weights)
    if weights.name == layout.MODEL_FILE:
        return layout.read_json(weights.parent / layout.META_FILE) or {}
    meta = layout.read_json(sidecar_path(weights)) or {}
    try:
        if meta and meta.get("weights_size") != weights.stat().st_size:
            return {}  # the .pth was replaced by something else (e.g. MiniMind's own script) since
    except FileNotFoundError:
        return {}
    return meta


def choose_tokenizer(explicit: str | None, init_meta: dict, log=print) -> Tokenizer:
    if explicit:
        return Tokenizer.from_dir(explicit)
    recorded = init_meta.get("tokenizer")
    if recorded and (Path(recorded) / "tokenizer.json").is_file():
        log(f"tokenizer: {recorded} (recorded with the initial weights)")
        return Tokenizer.from_dir(recorded)
    if (MINIMIND_TOKENIZER / "tokenizer.json").is_file():
        log(f"tokenizer: {MINIMIND_TOKENIZER} (MiniMind's; pass --tokenizer DIR for another)")
        return Tokenizer.from_dir(MINIMIND_TOKENIZER)
    from minimind_tui.demo import demo_tokenizer_dir
    log(f"tokenizer: the bundled demo tokenizer (pass --tokenizer DIR for another, e.g. ./model/minimind_tokenizer)")
    return Tokenizer.from_dir(demo_tokenizer_dir())


def model_config(settings: dict, vocab_size: int) -> LMConfig:
    try:
        return LMConfig(dim=settings["dim"], n_layers=settings["n_layers"], n_heads=settings["n_heads"],
                        n_kv_heads=settings["n_kv_heads"], vocab_size=vocab_size,
                        max_seq_len=settings["max_seq_len"], use_moe=bool(settings["use_moe"]))
    except ValueError as e:
        raise UserError(f"model settings: {e}") from None


def build_model(config: LMConfig, seed: int) -> MiniMindLM:
    # Seeding right before construction makes the initial weights a function of the seed alone
    # (and equal to MiniMind's for the same seed: the construction order matches).
    torch.manual_seed(seed)
    return MiniMindLM(config)


def load_init(model: MiniMindLM, weights: Path, log=print, tokenizer_dir=None) -> None:
    """Load initial weights; a shape mismatch is an error naming the key and both shapes."""
    state = load_state_dict(weights)
    emb = state.get("tok_embeddings.weight")
    if emb is not None and emb.shape[0] != model.config.vocab_size:
        raise CheckpointError(f"{weights}: tok_embeddings.weight has shape {tuple(emb.shape)}: a {emb.shape[0]}-token "
                              f"vocabulary, but the tokenizer {tokenizer_dir or ''} has {model.config.vocab_size}; "
                              f"pass --tokenizer DIR with the tokenizer these weights were trained with "
                              f"(MiniMind's is ./model/minimind_tokenizer)")
    missing, unexpected = check_compatible(model, state, weights)
    if missing:
        log(f"init {weights}: {len(missing)} weights not in the file, left at their random init: "
            f"{', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
    if unexpected:
        log(f"init {weights}: {len(unexpected)} weights in the file that the model does not use: "
            f"{', '.join(unexpected[:8])}{' …' if len(unexpected) > 8 else ''}")
    model.load_state_dict(state, strict=False)
    log(f"init: loaded {weights}")


def write_sidecar(weights: Path, meta: dict) -> None:
    path = sidecar_path(weights)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**meta, "weights_size": Path(weights).stat().st_size}, indent=2))
    tmp.replace(path)
