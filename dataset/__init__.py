"""Training data: JSONL indexing and checking (torch-free), Pretrain/SFT datasets (need torch).

The dataset classes are imported lazily so the dashboard can use the JSONL index and checks
without importing torch.
"""
from .errors import DataError

__all__ = ["DataError", "PretrainDataset", "SFTDataset", "JsonlFile"]


def __getattr__(name):
    if name in ("PretrainDataset", "SFTDataset"):
        from . import datasets
        return getattr(datasets, name)
    if name == "JsonlFile":
        from .jsonl import JsonlFile
        return JsonlFile
    raise AttributeError(name)
