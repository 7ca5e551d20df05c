"""The MiniMind network, its tokenizer, generation and checkpoint I/O. Never imports Textual.

MiniMindLM (torch) is imported lazily so the tokenizer alone can be used without torch (the dashboard's
Dataset tab tokenizes samples without loading a model)."""
from .config import PRESETS, LMConfig, preset
from .tokenizer import Tokenizer

__all__ = ["LMConfig", "MiniMindLM", "Tokenizer", "PRESETS", "preset"]


def __getattr__(name):
    if name == "MiniMindLM":
        from .model import MiniMindLM
        return MiniMindLM
    raise AttributeError(f"module 'model' has no attribute {name!r}")
