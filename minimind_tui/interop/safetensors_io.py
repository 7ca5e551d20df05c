"""Safetensors as the safe weights format: writing (shared storage handled, atomic) and strict reading.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw bytes. Unlike a pickle it cannot run code when loaded.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from dataset.atomic import write_atomic

from .errors import InteropError

# The format's own limit on the header (100 MB); anything larger is not a safetensors file.
MAX_HEADER_BYTES = 100_000_000


def save_safetensors(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    """Write through dataset.atomic, so a crash never leaves a half-written file.

    safetensors refuses tensors that share storage (tied weights, views of one buffer): each tensor is
    made contiguous and given storage of its own first.
    """
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    owned = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    # Serialised in memory and written through our own temporary file: safetensors' save_file would open a
    # path by name, following whatever is there.
    write_atomic(path, save(owned, metadata=metadata))


def read_header(path) -> dict:
    """The JSON header, checked against the file's size: a clear error for anything malformed."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InteropError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise InteropError(f"{path}: not a safetensors file or truncated (header claims {n} bytes, "
                                   f"file has {size}); re-export or re-download it")
            raw = f.read(n)
    except FileNotFoundError:
        raise InteropError(f"{path}: no such file") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InteropError(f"{path}: corrupt safetensors header ({e}); re-export or re-download it") from None
    except RecursionError:  # "[[[[..." : Python's parser gives up on deep nesting
        raise InteropError(f"{path}: corrupt safetensors header (JSON nested too deeply); re-export or "
                           "re-download it") from None
    if not isinstance(header, dict):
        raise InteropError(f"{path}: corrupt safetensors header (not a JSON object)")
    data_bytes = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise InteropError(f"{path}: corrupt safetensors header: tensor {name!r} has no data_offsets") from None
        if not all(type(x) is int for x in (start, end)):  # bool is an int to isinstance
            raise InteropError(f"{path}: corrupt safetensors header: tensor {name!r} has data_offsets "
                               f"{info['data_offsets']!r}, not two byte offsets; re-export or re-download it")
        if not (0 <= start <= end <= data_bytes):
            raise InteropError(f"{path}: truncated or corrupt: tensor {name!r} needs bytes {start}..{end} "
                               f"but the file holds {data_bytes}; re-export or re-download it")
    return header


def load_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata). The header is validated first so a bad file gets a message, not a Rust panic."""
    from safetensors import safe_open

    path = Path(path)
    header = read_header(path)
    tensors = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    except Exception as e:  # SafetensorError and friends: the library's own validation (dtype, overlaps)
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise InteropError(f"{path}: not a valid safetensors file ({first}); re-export or re-download it") from None
    return tensors, dict(header.get("__metadata__") or {})
