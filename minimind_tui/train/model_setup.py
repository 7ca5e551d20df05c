"""Choosing the tokenizer, building the model, and loading --init weights."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dataset.atomic import write_atomic
from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.tokenizer_choice import (
    DEMO_TOKENIZER_WHY,
    choose_tokenizer_dir,
    find_weights,
    recorded_meta,
    sidecar_path,
    weights_generation,
)
from model import LMConfig, MiniMindLM, Tokenizer, key_names
from model.checkpoint import CheckpointError, check_compatible, load_state_dict
from model.config import GENERATIONS

from . import checkpointing
from .args import default_init_path
from .precheck import init_missing_message


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # not stdout: chat --ckpt prints the model's answers there


def init_weights_file(init: str | Path, log=_say) -> Path:
    """--init may name a .pth file, a checkpoint folder, or a run folder (its newest complete checkpoint that
    passes its checksums, as on resume: checkpointing.verified_weights)."""
    found = checkpointing.verified_weights(init, log=log) or find_weights(init)
    if found is None:
        raise CheckpointError(f"{init}: no model.pth and no complete checkpoint inside")
    return found


def initial_weights(settings: dict, log=_say) -> Path | None:
    """The file --init names (None for random weights); a missing file is an error saying what to do."""
    if settings["init"] == "none":
        return None
    init = init_weights_file(settings["init"] or default_init_path(settings), log=log)
    if not init.is_file():
        raise CheckpointError(init_missing_message(init, default=settings["init"] is None, mode=settings["mode"]))
    return init


def choose_tokenizer(explicit: str | None, init_meta: dict, log=print, init_file: Path | None = None) -> Tokenizer:
    folder, why = choose_tokenizer_dir(Path("."), explicit, weights=init_file, meta=init_meta)
    if why != "--tokenizer":
        hint = "" if why.startswith("recorded") else "; pass --tokenizer DIR for another"
        if why == DEMO_TOKENIZER_WHY:
            hint += " (`minimind-tui download tokenizer` gets MiniMind's)"
        log(f"tokenizer: {folder} ({why}{hint})")
    return Tokenizer.from_dir(folder)


def choose_generation(explicit: dict, mode: str, log=print) -> str:
    """A new run's MiniMind generation: --generation, else the preset's, else that of the initial weights,
    else that of the tokenizer (a minimind-3 checkout's model/ folder means minimind-3), else v1.
    Weights of another generation than --generation asks for are an error naming both."""
    from .args import PRESET_GENERATION, resolve

    given = explicit.get("generation") or PRESET_GENERATION.get(explicit.get("preset") or "")
    weights = _initial_file(resolve(mode, {**explicit, "generation": given or "v1"}))
    found = weights_generation(weights, recorded_meta(weights)) if weights is not None else None
    if given and found and found != given:
        raise UserError(f"{weights}: these are {GENERATIONS[found]} weights (told by their key names), but "
                        f"{GENERATIONS[given]} was asked for; pass --generation {found} or other --init weights")
    if given or found:
        return given or found
    folder, _ = choose_tokenizer_dir(Path("."), explicit.get("tokenizer"))
    try:
        generation = Tokenizer.from_dir(folder).generation
    except Exception:  # a bad folder: the tokenizer check says so with its own message
        return "v1"
    if generation != "v1":
        log(f"generation: {GENERATIONS[generation]} (from the tokenizer {folder}; --generation chooses)")
    return generation


def _initial_file(settings: dict) -> Path | None:
    """The weights a new run would start from, when they exist (the trainer reports missing ones later)."""
    if settings["init"] == "none":
        return None
    try:
        # Quiet: the trainer's own initial_weights says it when a run folder's newest checkpoint fails.
        found = init_weights_file(settings["init"] or default_init_path(settings), log=lambda _message: None)
    except CheckpointError:
        return None
    return found if found.is_file() else None


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


def load_init(model: MiniMindLM, weights: Path, log=print, tokenizer_dir=None, state: dict | None = None) -> None:
    """Load initial weights of the model's generation (fp16 or fp32, the tied matrix under one key or
    both); a shape mismatch is an error naming the key and both shapes. `state`: the weights of `weights`,
    when already read."""
    state = dict(state) if state is not None else load_state_dict(weights)
    generation = model.config.generation
    found = key_names.detect_generation(state)
    if found is not None and found != generation:
        raise CheckpointError(f"{weights}: these are {GENERATIONS[found]} weights (told by their key names), but "
                              f"the run trains a {GENERATIONS[generation]} model; pass --generation {found}")
    embed = "tok_embeddings.weight" if generation == "v1" else key_names.hf_key("tok_embeddings.weight")
    output = "output.weight" if generation == "v1" else "lm_head.weight"
    if model.config.tie_embeddings:  # stored under one of its two names only: the other is the same matrix
        for a, b in ((embed, output), (output, embed)):
            if a in state and b not in state:
                state[b] = state[a]
    emb = state.get(embed)
    if emb is not None and emb.shape[0] != model.config.vocab_size:
        raise CheckpointError(f"{weights}: {embed} has shape {tuple(emb.shape)}: a {emb.shape[0]}-token "
                              f"vocabulary, but the tokenizer {tokenizer_dir or ''} has {model.config.vocab_size}; "
                              f"pass --tokenizer DIR with the tokenizer these weights were trained with "
                              f"(MiniMind's is ./model/minimind_tokenizer)")
    flags = "--dim/--n_layers/--use_moe" if generation == "v1" else "--hidden_size/--num_hidden_layers/--use_moe"
    missing, unexpected = check_compatible(model, state, weights, flags)
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
