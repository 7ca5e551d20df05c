"""The MiniMind network (every generation: v1, MiniMind2, minimind-3), its tokenizer, generation and
checkpoint I/O. Never imports Textual.

    from model import load_minimind, Tokenizer
    m = load_minimind("out/full_sft_768.pth", hidden_size=768, num_hidden_layers=8)   # any generation
    load_lora(m, "out/lora_medical_768.pth"); merge_lora(m)                       # MiniMind's LoRA (lora.py)

MiniMindLM, load_minimind, save_minimind and the LoRA functions (torch) are imported lazily so the tokenizer
alone can be used without torch (the dashboard's Dataset tab tokenizes samples without loading a model), and
Tokenizer (the `tokenizers` library) lazily so the dashboard's first frame, which reads model.config's presets,
imports neither."""
from .config import (
    GENERATION_PRESETS,
    GENERATIONS,
    PRESETS,
    LMConfig,
    MiniMind2Config,
    MiniMind3Config,
    make_config,
    preset,
)

__all__ = ["LMConfig", "MiniMind2Config", "MiniMind3Config", "MiniMindLM", "Tokenizer", "GENERATIONS",
           "GENERATION_PRESETS", "PRESETS", "apply_lora", "load_lora", "load_minimind", "make_config",
           "merge_lora", "preset", "save_lora", "save_minimind"]

_LAZY = {"MiniMindLM": "model", "load_minimind": "generations", "save_minimind": "generations",
         "Tokenizer": "tokenizer", "apply_lora": "lora", "load_lora": "lora", "merge_lora": "lora",
         "save_lora": "lora"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
