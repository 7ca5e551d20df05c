"""Training data: JSONL indexing and checking (torch-free), Pretrain/SFT/DPO datasets (need torch).

The dataset classes are imported lazily so the dashboard can use the JSONL index and checks
without importing torch.

atomic.py, the project's one way to replace a file, lives here because this is the lowest layer that
model/, dataset/ and minimind_tui/ all import (it imports nothing of theirs, nor torch or Textual).
"""
from .errors import DataError

__all__ = ["DataError", "DPODataset", "PretrainDataset", "SFTDataset", "JsonlFile"]


def __getattr__(name):
    if name in ("PretrainDataset", "SFTDataset", "DPODataset"):
        from . import datasets
        return getattr(datasets, name)
    if name == "JsonlFile":
        from .jsonl import JsonlFile
        return JsonlFile
    raise AttributeError(name)
