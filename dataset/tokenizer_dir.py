"""Where the tokenizer is when nobody named one: the project's MiniMind tokenizer, else the bundled demo one.
Kept apart from preview.py (numpy) so the dashboard can ask at start-up for nothing."""
from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEMO_TOKENIZER = PACKAGE_ROOT / "minimind_tui" / "assets" / "demo_tokenizer"


def default_tokenizer_dir(root=None) -> Path:
    """`<root>/model/minimind_tokenizer` when it holds a tokenizer (a MiniMind checkout), else the bundled
    demo tokenizer."""
    if root is not None:
        local = Path(root) / "model" / "minimind_tokenizer"
        if (local / "tokenizer.json").is_file():
            return local
    return DEMO_TOKENIZER
