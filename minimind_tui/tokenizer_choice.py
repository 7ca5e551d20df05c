"""Which tokenizer goes with which weights: one rule for the trainer, chat, export, and the dashboard's data
preview and memory estimate, so the preview shows the tokens the trainer will really use.

The order: --tokenizer, then the one recorded with the initial weights (our meta.json or .meta.json sidecar,
or the run's config.json), then a Hugging Face model folder's own, then the first tokenizer where users keep
one under the project (dataset/tokenizer_dir.py: model/minimind_tokenizer, upstream's model/, download's
model/minimind-3_tokenizer; of the weights' generation when they have one), then the bundled demo tokenizer.
Torch-free: the app calls it while the user edits the form.
"""
from __future__ import annotations

from pathlib import Path

from dataset.tokenizer_dir import DEMO_TOKENIZER, default_tokenizer_dir
from minimind_tui.runs import layout
from model.key_names import detect_generation, stored_keys

MINIMIND_TOKENIZER = Path("model") / "minimind_tokenizer"  # where a MiniMind checkout keeps its tokenizer
MINIMIND3_TOKENIZER = Path("model") / "minimind-3_tokenizer"  # where `download tokenizer-3` puts minimind-3's
DEMO_TOKENIZER_WHY = "the bundled demo tokenizer"  # choose_tokenizer_dir's reason when nothing better was found


def demo_tokenizer_hint() -> str:
    """What to say when a model other than the demo would get the demo tokenizer: how to get MiniMind's."""
    return ("no MiniMind tokenizer in ./model/minimind_tokenizer: the bundled demo tokenizer (a small vocabulary "
            "made for the demo corpus) would be used; get MiniMind's with `minimind-tui download tokenizer`, "
            "or pass --tokenizer DIR")


def sidecar_path(weights: Path) -> Path:
    """out/pretrain_512.pth -> out/pretrain_512.meta.json: what we know about a MiniMind-style file."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ".meta.json")


def find_weights(init: str | Path) -> Path | None:
    """The weights file --init names: a .pth, a checkpoint folder, or a run folder (its newest complete
    checkpoint). None for a folder holding neither."""
    path = Path(init)
    if not path.is_dir():
        return path
    if (path / layout.MODEL_FILE).is_file():
        return path / layout.MODEL_FILE
    # The newest not damaged: resume falls back past a damaged one, and so do chat and --init.
    done = [ck for ck in layout.complete_checkpoints(path) if not layout.meta_damaged(ck)]
    return done[-1] / layout.MODEL_FILE if done else None


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


def damaged_meta(weights: Path) -> Path | None:
    """A run checkpoint's meta.json that is there but does not read as a JSON object: nothing it should
    record (checksums, model settings, tokenizer) can be trusted, so chat and export refuse these weights
    (resume, and chat or --init given the run folder, take the previous checkpoint instead)."""
    weights = Path(weights)
    if weights.name == layout.MODEL_FILE and layout.meta_damaged(weights.parent):
        return weights.parent / layout.META_FILE
    return None


def weights_generation(weights: Path, meta: dict | None = None) -> str | None:
    """"v1", "gen2" or "gen3" of a weights file or model folder: as our trainer recorded it, else from the key
    names it stores (read without torch); None when neither tells."""
    recorded = (meta or {}).get("config")
    if isinstance(recorded, dict) and recorded.get("generation"):
        return recorded["generation"]
    return detect_generation(stored_keys(weights))


def run_settings(weights: Path) -> dict:
    """The settings in runs/<id>/config.json when the weights are runs/<id>/checkpoints/step_N/model.pth."""
    weights = Path(weights)
    if weights.name != layout.MODEL_FILE or weights.parent.parent.name != layout.CHECKPOINTS:
        return {}
    config = layout.read_json(weights.parent.parent.parent / layout.CONFIG) or {}
    return config.get("settings") or {}


def choose_tokenizer_dir(root: Path = Path("."), explicit: str | Path | None = None, weights: Path | None = None,
                         meta: dict | None = None, generation: str | None = None) -> tuple[Path, str]:
    """(directory, why it was chosen) for a model starting from `weights` (None: random init; `generation`
    then says which MiniMind it will be, when known). A relative `explicit` is taken from `root`, as the
    trainer started there would."""
    root = Path(root)
    if explicit:
        explicit = Path(explicit)
        return (explicit if explicit.is_absolute() or root == Path(".") else root / explicit), "--tokenizer"
    if meta is None:
        meta = recorded_meta(weights) if weights is not None else {}
    recorded = [(meta.get("tokenizer"), "recorded with the weights")]
    if weights is not None:
        recorded.append((run_settings(weights).get("tokenizer"), "recorded in the run's config.json"))
    for folder, why in recorded:
        if isinstance(folder, str) and (Path(folder) / "tokenizer.json").is_file():
            return Path(folder), why
    if weights is not None and (Path(weights) / "tokenizer.json").is_file():
        return Path(weights), "the model folder's own"
    if weights is not None:
        generation = weights_generation(weights, meta) or generation
    found = default_tokenizer_dir(root, generation)
    if found == DEMO_TOKENIZER:
        return found, DEMO_TOKENIZER_WHY
    where = found.relative_to(root).as_posix()
    return found, f"MiniMind's {where}" + ("/ folder" if found.name == "model" else "")
