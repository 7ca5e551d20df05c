"""Where the tokenizer is when nobody named one, and which MiniMind generation a tokenizer folder is, read from
its JSON files alone. Kept apart from preview.py (numpy) and model/tokenizer.py (the `tokenizers` library) so
the dashboard can ask at start-up for nothing.

A tokenizer is looked for where users have one, under the project root, in this order:
- `model/minimind_tokenizer`: a v1 checkout, and where `minimind-tui download tokenizer` puts MiniMind2's;
- `model`: a MiniMind2 or minimind-3 checkout keeps its tokenizer.json and tokenizer_config.json there;
- `model/minimind-3_tokenizer`: where `minimind-tui download tokenizer-3` puts minimind-3's
  (minimind_tui/interop/catalogue.py).
Weights of a known generation take the first folder of that generation.
"""
from __future__ import annotations

import json
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEMO_TOKENIZER = PACKAGE_ROOT / "minimind_tui" / "assets" / "demo_tokenizer"
TOKENIZER_FOLDERS = (Path("model") / "minimind_tokenizer", Path("model"), Path("model") / "minimind-3_tokenizer")


def detect_generation(bos_token: str, added_tokens: set[str]) -> str:
    """v1 opens turns with `<s>`; MiniMind2 and minimind-3 with `<|im_start|>`, and only minimind-3's
    vocabulary has `<think>` as one added token (MiniMind2 spells it with ordinary BPE pieces)."""
    if bos_token != "<|im_start|>":
        return "v1"
    return "gen3" if "<think>" in added_tokens else "gen2"


def tokenizer_generation(folder) -> str | None:
    """"v1", "gen2" or "gen3" of a tokenizer folder by detect_generation's rule, from tokenizer_config.json's
    bos_token and tokenizer.json's added tokens, as model.tokenizer.Tokenizer reads them; None when they
    cannot be read."""
    folder = Path(folder)
    try:
        tokens = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("added_tokens") or []
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        bos = config.get("bos_token") or "<s>"
        bos = bos.get("content") if isinstance(bos, dict) else bos
        added = {str(t.get("content")) for t in tokens if isinstance(t, dict)}
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return detect_generation(str(bos), added)


def tokenizer_folders(root) -> list[Path]:
    """The folders of TOKENIZER_FOLDERS under `root` that hold a tokenizer, in that order."""
    return [Path(root) / f for f in TOKENIZER_FOLDERS if (Path(root) / f / "tokenizer.json").is_file()]


def default_tokenizer_dir(root=None, generation: str | None = None) -> Path:
    """The first tokenizer under `root` (TOKENIZER_FOLDERS), the first of `generation` when one is, else the
    bundled demo tokenizer."""
    found = tokenizer_folders(root) if root is not None else []
    if generation is not None:
        of_generation = [f for f in found if tokenizer_generation(f) == generation]
        found = of_generation or found
    return found[0] if found else DEMO_TOKENIZER
