"""Choosing the tokenizer, building the model, and loading --init weights."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from dataset.atomic import write_atomic
from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.tokenizer_choice import DEMO_TOKENIZER_WHY, choose_tokenizer_dir, find_weights, sidecar_path
from model import LMConfig, MiniMindLM, Tokenizer
from model.checkpoint import CheckpointError, check_compatible, load_state_dict

from .args import default_init_path
from .precheck import init_missing_message


def init_weights_file(init: str | Path) -> Path:
    """--init may name a .pth file, a checkpoint folder, or a run folder (its newest complete checkpoint)."""
    found = find_weights(init)
    if found is None:
        raise CheckpointError(f"{init}: no model.pth and no complete checkpoint inside")
    return found


def initial_weights(settings: dict) -> Path | None:
    """The file --init names (None for random weights); a missing file is an error saying what to do."""
    if settings["init"] == "none":
        return None
    init = init_weights_file(settings["init"] or default_init_path(settings))
    if not init.is_file():
        raise CheckpointError(init_missing_message(init, default=settings["init"] is None))
    return init


def choose_tokenizer(explicit: str | None, init_meta: dict, log=print, init_file: Path | None = None) -> Tokenizer:
    folder, why = choose_tokenizer_dir(Path("."), explicit, weights=init_file, meta=init_meta)
    if why != "--tokenizer":
        hint = "" if why.startswith("recorded") else "; pass --tokenizer DIR for another"
        if why == DEMO_TOKENIZER_WHY:
            hint += " (`minimind-tui download tokenizer` gets MiniMind's)"
        log(f"tokenizer: {folder} ({why}{hint})")
    return Tokenizer.from_dir(folder)


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


# What fixes the weights' shapes: a config.json that changes one of these cannot take its run's checkpoints.
SHAPE_FIELDS = ("dim", "n_layers", "n_heads", "n_kv_heads", "use_moe", "vocab_size")


def load_resumed(model: MiniMindLM, loaded, run_dir: Path) -> None:
    """A resumed run's checkpoint (`checkpointing.Loaded`) into the model its config.json describes. A
    hand-edited config.json that contradicts the checkpoint (the model settings its meta.json recorded, or
    the weights' shapes) is one line naming config.json, not a torch traceback."""
    config_file = Path(run_dir) / layout.CONFIG
    fix = f"restore the run's values, or start a new run with --init {loaded.path}"
    recorded = loaded.meta.get("config")
    if isinstance(recorded, dict):
        differ = {k: f"{k} {getattr(model.config, k)} (the checkpoint has {recorded[k]})" for k in SHAPE_FIELDS
                  if k in recorded and recorded[k] != getattr(model.config, k)}
        if differ:
            hint = " (its tokenizer setting decides vocab_size)" if "vocab_size" in differ else ""
            raise UserError(f"{config_file}: does not describe the checkpoint {loaded.path}: "
                            f"{', '.join(differ.values())}{hint}; {fix}")
    try:
        missing, unexpected = check_compatible(model, loaded.weights, loaded.path / layout.MODEL_FILE)
    except CheckpointError as e:
        raise UserError(f"{config_file}: does not describe the checkpoint ({e}); {fix}") from None
    if missing or unexpected:
        what, names = ("missing", missing) if missing else ("unexpected", unexpected)
        raise UserError(f"{config_file}: does not describe the checkpoint {loaded.path} ({what} weights "
                        f"{', '.join(names[:3])}); {fix}")
    model.load_state_dict(loaded.weights)


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
    write_atomic(sidecar_path(weights), json.dumps({**meta, "weights_size": Path(weights).stat().st_size}, indent=2))
