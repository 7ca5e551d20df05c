"""The MiniMind network, its tokenizer, generation and checkpoint I/O. Never imports Textual."""
from .config import PRESETS, LMConfig, preset
from .model import MiniMindLM
from .tokenizer import Tokenizer

__all__ = ["LMConfig", "MiniMindLM", "Tokenizer", "PRESETS", "preset"]
