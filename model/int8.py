"""Optional int8 weight-only matmuls for CPU decoding.

Decoding one token multiplies a single row by every weight matrix, so its speed is bound by how many
weight bytes are read. Storing each matrix as int8 with one scale per output row reads a quarter of the
fp32 bytes. Activations go through bfloat16 for the kernel, so results are close to, not equal to, the
fp32 ones: an opt-in speed mode for chatting on a CPU, never used unless asked for.
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import nn

from .lora import has_adapter


def available(device: torch.device | str) -> bool:
    """Whether this PyTorch has the fused int8 x bf16 kernel for CPU (also used by its own LLM examples)."""
    return hasattr(torch.ops.aten, "_weight_int8pack_mm") and torch.device(device).type == "cpu"


class Int8Linear:
    """y = x @ W.T with W stored as int8 rows times per-row scales."""

    def __init__(self, weight: torch.Tensor):
        w = weight.detach().float()
        scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0           # (out,)
        self.q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        self.scales = scales.to(torch.bfloat16)
        self.out_features = weight.shape[0]

    @classmethod
    def stacked(cls, parts: list[Int8Linear]) -> Int8Linear:
        """Several matrices applied to the same input as one (rows are quantized independently, so this
        is exact): one kernel call instead of several per token."""
        fused = cls.__new__(cls)
        fused.q = torch.cat([p.q for p in parts]).contiguous()
        fused.scales = torch.cat([p.scales for p in parts])
        fused.out_features = fused.q.shape[0]
        return fused

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.q, self.scales)
        return y.to(x.dtype).view(*x.shape[:-1], self.out_features)


class Network(Protocol):
    """What the copies are made from: an nn.Module (anything that lists its modules and parameters)."""

    def modules(self) -> Iterator[nn.Module]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


Built = TypeVar("Built", bound="PerModel")


class PerModel:
    """Copies of a model's weights, built once per model: `for_model` caches them, and rebuilds them if any
    weight changed in place since (e.g. more training)."""

    _cache: ClassVar[weakref.WeakKeyDictionary[Network, Any]]  # one per subclass

    def __init__(self, model: Network):
        self._versions = _versions(model)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._cache = weakref.WeakKeyDictionary()

    @classmethod
    def for_model(cls: type[Built], model: Network) -> Built:
        found = cls._cache.get(model)
        if found is None or found._versions != _versions(model):
            found = cls._cache[model] = cls(model)
        return found


def shared_input(module: nn.Module) -> tuple[str, ...]:
    """The names of a module's projections of one input (attention's q|k|v, SwiGLU's w1|w3), if any."""
    return getattr(module, "SHARED_INPUT", ())


class Int8Weights(PerModel):
    """int8 copies of a model's linear layers, keyed by module; built once per model (see `for_model`)."""

    def __init__(self, model: Network):
        super().__init__(model)
        # Keyed by id(): holding the modules themselves would keep the model alive through the cache.
        self.linears: dict[int, Int8Linear] = {}
        for module in model.modules():
            # A layer carrying a LoRA adapter (lora.py) computes itself: W x + B(A(x)), in full precision.
            if isinstance(module, nn.Linear) and module.bias is None and not has_adapter(module):
                self.linears[id(module)] = Int8Linear(module.weight)
        # Projections that share an input, stacked.
        self.stacks: dict[int, tuple[Int8Linear, list[int]]] = {}
        for module in model.modules():
            parts = [self.linears.get(id(getattr(module, name))) for name in shared_input(module)]
            found = [p for p in parts if p is not None]
            if found and len(found) == len(parts):
                self.stacks[id(module)] = (Int8Linear.stacked(found), [p.out_features for p in found])

    def linear(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        q = self.linears.get(id(module))
        return q(x) if q is not None else module(x)

    def stacked(self, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(q, k, v) for an attention module, (w1 x, w3 x) for a SwiGLU feed-forward, in one kernel call
        (one per projection when one of them carries a LoRA adapter)."""
        found = self.stacks.get(id(module))
        if found is None:
            return tuple(self.linear(getattr(module, name), x) for name in shared_input(module))
        fused, sizes = found
        return fused(x).split(sizes, dim=-1)


class StackedWeights(PerModel):
    """fp32 copies of attention's q|k|v and SwiGLU's w1|w3, each concatenated into one matrix, for
    one-token decoding: one matmul where the model makes two or three (exact: the same rows, the same
    arithmetic). Costs a second copy of those weights while a model is used for generation."""

    def __init__(self, model: Network):
        super().__init__(model)
        self.stacks: dict[int, tuple[torch.Tensor, list[int]]] = {}
        for module in model.modules():
            names = shared_input(module)
            # Projections carrying a LoRA adapter (lora.py) are not stacked: each adds its own B(A(x)).
            if names and not any(has_adapter(getattr(module, name)) for name in names):
                weights = [getattr(module, name).weight.detach() for name in names]
                self.stacks[id(module)] = (torch.cat(weights).contiguous(), [w.shape[0] for w in weights])

    def linear(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return module(x)

    def stacked(self, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        found = self.stacks.get(id(module))
        if found is None:  # a projection carries an adapter
            return tuple(getattr(module, name)(x) for name in shared_input(module))
        weight, sizes = found
        return torch.nn.functional.linear(x, weight).split(sizes, dim=-1)


def _versions(model: Network) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in model.parameters())
