"""Comparing runs: which settings differ between them (from each run's config.json). No Textual here."""
from __future__ import annotations

from collections.abc import Sequence

# config.json entries that say how a run was started rather than what it trained: always different, never the
# reason two curves differ.
NOT_SETTINGS = {"schema", "command", "argv", "cwd", "versions", "git_revision", "created", "run_dir", "resume",
                "run_id"}
# Settings worth reading first, when they differ; the rest follow in name order.
FIRST = ("mode", "data_path", "learning_rate", "batch_size", "accumulation_steps", "epochs", "max_seq_len",
         "hidden_size", "dim", "num_hidden_layers", "n_layers", "use_moe", "warmup_iters", "grad_clip", "dtype",
         "seed", "world_size", "params")
MISSING = "—"


def flat_settings(config: dict | None) -> dict[str, object]:
    """One level of settings from a run's config.json: the trainer's flags ("settings"), the model's config
    ("model_config") and the top-level facts (world size, parameter count); nested dicts become dotted names."""
    out: dict[str, object] = {}
    for key, value in (config or {}).items():
        if key in NOT_SETTINGS:
            continue
        if isinstance(value, dict):
            inner = key in ("settings", "model_config", "args")
            for k, v in value.items():
                if k not in NOT_SETTINGS:
                    out.setdefault(k if inner else f"{key}.{k}", v)
        else:
            out.setdefault(key, value)
    return out


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def config_diff(configs: Sequence[dict | None]) -> list[tuple[str, list[str]]]:
    """The settings whose values are not all the same across the runs, each with one value per run (MISSING
    where a run does not have it), the usual suspects first."""
    flats = [flat_settings(c) for c in configs]
    keys = {k for f in flats for k in f}
    rows = []
    for key in keys:
        values = [_shown(f[key]) if key in f else MISSING for f in flats]
        if len(set(values)) > 1:
            rows.append((key, values))
    rank = {k: i for i, k in enumerate(FIRST)}
    return sorted(rows, key=lambda row: (rank.get(row[0], len(rank)), row[0]))
