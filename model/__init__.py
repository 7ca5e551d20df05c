"""The MiniMind network, its tokenizer, generation and checkpoint I/O. Never imports Textual.

MiniMindLM (torch) is imported lazily so the tokenizer alone can be used without torch (the dashboard's
Dataset tab tokenizes samples without loading a model), and Tokenizer (the `tokenizers` library) lazily so
the dashboard's first frame, which reads model.config's presets, imports neither."""
from .config import PRESETS, LMConfig, preset

__all__ = ["LMConfig", "MiniMindLM", "Tokenizer", "PRESETS", "preset"]


def __getattr__(name):
    if name == "MiniMindLM":
        from .model import MiniMindLM
        return MiniMindLM
    if name == "Tokenizer":
        from .tokenizer import Tokenizer
        return Tokenizer
    raise AttributeError(f"module 'model' has no attribute {name!r}")
