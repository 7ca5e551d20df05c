"""MiniMind's LoRA, for every generation: a low-rank adapter added to every square linear layer.

    from model import load_minimind, load_lora, merge_lora, save_lora
    m = load_lora(load_minimind("out/full_sft_512.pth"), "out/lora/lora_identity_512.pth")  # base + adapter
    merge_lora(m)                      # folded into the weights (minimind-3's merge_lora), adapter gone

MiniMind's adapter is the plain one: `W x + B(A(x))`, A a Linear(in, rank) and B a Linear(rank, out), both
without bias and without a scaling factor, on every nn.Linear whose weight is square (in this network the
attention's wq and wo, MiniMind2's and minimind-3's q_proj and o_proj). The three generations share it and
differ only in the rank (LORA_RANK) and in what their save_lora writes: the same key names as the model
(`model.layers.N.self_attn.q_proj.lora.A.weight`; v1 `layers.N.attention.wq.lora.A.weight`), in fp32 (v1,
MiniMind2) or fp16 (minimind-3). Only minimind-3 has a merge_lora.

An adapted layer stays the same nn.Linear object with its weight under its own key: attaching swaps its class
for LoRALinear (as torch.nn.utils.parametrize does), so every caller of the layer gets the adapter, a deepcopy
(DPO's reference model) copies it, and a model without adapters runs exactly as before.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from . import key_names
from .checkpoint import CheckpointError, load_state_dict, save_atomic
from .config import GENERATIONS, LORA_RANK

# What each generation's save_lora writes: v1's and MiniMind2's save the adapter as it is (an fp32 model's),
# minimind-3's casts it with .half().
ADAPTER_DTYPE = {"v1": torch.float32, "gen2": torch.float32, "gen3": torch.float16}

_ADAPTER_KEY = re.compile(r"(.+)\.lora\.([AB])\.weight")


class LoRAError(CheckpointError):
    """An adapter that cannot be used as asked: one line naming the file or flag (user_facing)."""


class LoRA(nn.Module):
    """The adapter itself: x -> B(A(x))."""

    def __init__(self, in_features: int, out_features: int, rank: int, device: str | torch.device | None = None):
        super().__init__()
        self.rank = rank
        self.A = nn.Linear(in_features, rank, bias=False, device=device)
        self.B = nn.Linear(rank, out_features, bias=False, device=device)
        # MiniMind's init in every generation: A Gaussian, B zero, so a fresh adapter changes nothing. The two
        # Linear constructors draw their own default init first, as upstream's do: a seeded apply_lora draws
        # the same A.
        with torch.no_grad():
            self.A.weight.normal_(mean=0.0, std=0.02)
            self.B.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.B(self.A(x))


class LoRALinear(nn.Linear):
    """An nn.Linear carrying an adapter (its `lora` submodule): W x + B(A(x))."""

    lora: LoRA

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.lora(x)


def has_adapter(module: nn.Module) -> bool:
    """Whether this layer carries an adapter (int8.py's decoding copies leave such layers to themselves)."""
    return isinstance(module, LoRALinear)


def adapted_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    """(name, layer) of every layer carrying an adapter, in named_modules order (v1's module names)."""
    for name, module in _unwrap(model).named_modules():
        if isinstance(module, LoRALinear):
            yield name, module


def lora_targets(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The layers MiniMind puts an adapter on: every nn.Linear whose weight is square (never an adapter's own)."""
    return [(name, module) for name, module in _unwrap(model).named_modules()
            if isinstance(module, nn.Linear) and module.in_features == module.out_features
            and "lora" not in name.split(".")]


def apply_lora(model: nn.Module, rank: int | None = None) -> nn.Module:
    """Attach a fresh adapter (MiniMind's init: A ~ N(0, 0.02), B = 0) to every square linear layer, replacing
    any attached before; `rank` defaults to the model's generation's (LORA_RANK). Returns the model."""
    rank = rank or LORA_RANK[_generation(model)]
    targets = lora_targets(model)
    if not targets:
        raise LoRAError("this model has no square linear layer to put a LoRA adapter on (MiniMind's rule: "
                        "in_features == out_features; a minimind-3 head_dim other than hidden/heads leaves none)")
    for _, layer in targets:
        # Built on the CPU in fp32, then moved, as upstream's `.to(model.device)`: the same random draws.
        lora = LoRA(layer.in_features, layer.out_features, rank)
        _attach(layer, lora.to(device=layer.weight.device, dtype=layer.weight.dtype))
    return model


def remove_lora(model: nn.Module) -> nn.Module:
    """Take every adapter off without merging it: the base model again. Returns the model."""
    for _, layer in list(adapted_layers(model)):
        _detach(layer)
    return model


def freeze_all_but_lora(model: nn.Module) -> list[nn.Parameter]:
    """As MiniMind's train_lora: every weight frozen but the adapters'; returns the adapters' parameters
    (what the optimizer gets)."""
    adapters = [p for _, layer in adapted_layers(model) for p in layer.lora.parameters()]
    if not adapters:
        raise LoRAError("no LoRA adapter is attached: apply_lora(model) or load_lora(model, path) first")
    keep = {id(p) for p in adapters}
    for p in _unwrap(model).parameters():
        p.requires_grad_(id(p) in keep)
    return adapters


# ---- files -------------------------------------------------------------------------------------------------
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters as the model's generation's save_lora writes them: `{layer}.lora.A.weight` and `.B.weight`
    under that generation's key names, in named_modules order, on the CPU, in ADAPTER_DTYPE."""
    generation = _generation(model)
    dtype = ADAPTER_DTYPE[generation]
    out = {}
    for name, layer in adapted_layers(model):
        for part, tensor in layer.lora.state_dict().items():  # A.weight, B.weight
            key = f"{name}.lora.{part}"
            out[key if generation == "v1" else key_names.hf_key(key)] = tensor.detach().to(device="cpu",
                                                                                          dtype=dtype)
    if not out:
        raise LoRAError("no LoRA adapter is attached: nothing to save")
    return out


def save_lora(model: nn.Module, path) -> None:
    """Write the adapters exactly as the model's generation's save_lora does (lora_state_dict), atomically;
    upstream's load_lora reads the file."""
    save_atomic(lora_state_dict(model), path)


def load_lora(model: nn.Module, path) -> nn.Module:
    """Attach the adapter file `path` of any generation to a loaded model, unmerged, replacing any attached
    before; returns the model. The file's rank and naming are read from it (adapter_generation); it must
    cover exactly the model's square linear layers with fitting shapes, as upstream's strict load does.
    fp16 and fp32 files alike: the adapter takes the dtype and device of the layer it sits on."""
    path = Path(path)
    return attach_lora_state(model, load_state_dict(path), path)  # weights_only; wrapper prefixes dropped


def attach_lora_state(model: nn.Module, state: dict[str, torch.Tensor], path: object = "") -> nn.Module:
    """load_lora from the adapter tensors themselves (`path` names them in errors): an adapter file's, or the
    `.lora.` keys of a full state dict saved while adapters were attached (load_minimind attaches those)."""
    generation = _generation(model)
    found = adapter_generation(state, path)
    if (found == "v1") != (generation == "v1"):  # v1's query rows are ordered differently (key_names.py)
        raise LoRAError(f"{path}: a {GENERATIONS[found]} LoRA file cannot go on this {GENERATIONS[generation]} "
                        f"model; use an adapter trained on a {GENERATIONS[generation]} model")
    pairs = _adapter_pairs(state, path)
    targets = dict(lora_targets(model))
    if set(pairs) != set(targets):
        extra, missing = sorted(set(pairs) - set(targets)), sorted(set(targets) - set(pairs))
        what = f"names layers this model lacks ({', '.join(extra[:3])})" if extra else \
            f"has no adapter for {', '.join(missing[:3])}"
        raise LoRAError(f"{path}: this LoRA file {what}; is it for another model size (--hidden_size / "
                        f"--num_hidden_layers)?")
    for name, (a, b) in pairs.items():
        layer = targets[name]
        if a.shape[0] != b.shape[1] or a.shape[1] != layer.in_features or b.shape[0] != layer.out_features:
            raise LoRAError(f"{path}: the adapter of {_file_key(name, found)} is A {tuple(a.shape)}, B "
                            f"{tuple(b.shape)}, which does not fit a layer of {layer.in_features} -> "
                            f"{layer.out_features}; is it for another model size?")
    for name, (a, b) in pairs.items():
        layer = targets[name]
        # Built without drawing random numbers (an eval's sampling seeds stay as they were), then filled.
        lora = LoRA(layer.in_features, layer.out_features, a.shape[0], device="meta")
        device, dtype = layer.weight.device, layer.weight.dtype
        lora.A.weight = nn.Parameter(a.to(device=device, dtype=dtype))
        lora.B.weight = nn.Parameter(b.to(device=device, dtype=dtype))
        _attach(layer, lora)
    return model


def adapter_generation(state: dict[str, torch.Tensor], source: object = "") -> str:
    """Which generation wrote an adapter file: v1 by its key names (layers.N.attention.wq...); MiniMind2 and
    minimind-3 name keys alike, and tell apart by dtype (minimind-3 saves fp16); the rank (v1 16, MiniMind2 8,
    minimind-3 16) is the A matrices' first dimension (lora_rank)."""
    keys = list(state)
    if not keys or not all(_ADAPTER_KEY.fullmatch(k) for k in keys):
        other = next((k for k in keys if not _ADAPTER_KEY.fullmatch(k)), None)
        hint = (" (a full model's weights? load them as the model, the adapter with --lora_weight)"
                if other and key_names.detect_generation([other]) else "")
        raise LoRAError(f"{source}: not a LoRA adapter file: {repr(other) if other else 'no keys'} is not a "
                        f"`<layer>.lora.A.weight` / `.lora.B.weight` key{hint}")
    if not keys[0].startswith(key_names.HF_BODY) and not keys[0].startswith("lm_head."):
        return "v1"
    return "gen3" if next(iter(state.values())).dtype == torch.float16 else "gen2"


def lora_rank(state: dict[str, torch.Tensor]) -> int:
    """An adapter file's rank: its first A matrix's rows."""
    return next(v.shape[0] for k, v in state.items() if k.endswith(".lora.A.weight"))


def lora_weights_path(generation: str, save_dir, name: str, hidden: int, use_moe: bool = False) -> Path:
    """Where `generation`'s train_lora.py writes adapter `name` for a model of width `hidden`:
    v1         {out_dir}/lora/{name}_{dim}.pth            (save_dir is v1's --out_dir)
    MiniMind2  {save_dir}/{name}_{hidden_size}.pth        (its --save_dir defaults to ../out/lora: the lora
                                                          folder is in that default, not in the rule)
    minimind-3 {save_dir}/{name}_{hidden_size}[_moe].pth  (--save_dir default ../out)"""
    save_dir = Path(save_dir)
    if generation == "v1":
        return save_dir / "lora" / f"{name}_{hidden}.pth"
    if generation == "gen2":
        return save_dir / f"{name}_{hidden}.pth"
    return save_dir / f"{name}_{hidden}{'_moe' if use_moe else ''}.pth"


def eval_lora_path(generation: str, save_dir, name: str, hidden: int) -> Path:
    """What each generation's chat script reads for `--lora_weight NAME` (v1: eval_model's `--lora_name`),
    save_dir being its --save_dir (v1 --out_dir; default out): v1 {out_dir}/lora/{name}_{dim}.pth, MiniMind2
    {save_dir}/lora/{name}_{hidden}.pth, minimind-3 {save_dir}/{name}_{hidden}.pth (never `_moe`)."""
    if generation == "gen2":
        return lora_weights_path(generation, Path(save_dir) / "lora", name, hidden)
    return lora_weights_path(generation, save_dir, name, hidden, use_moe=False)


def find_lora_weights(adapter: str | Path, base_dir, generation: str, hidden: int, use_moe: bool = False) -> Path:
    """The adapter file `adapter` names: a path (anything with a directory part or ending in .pth), or a
    NAME looked up beside the base weights in `base_dir` as the generation's chat script reads it, then as
    its trainer writes it. A one-line error lists where it looked."""
    text = str(adapter)
    if text.endswith(".pth") or "/" in text or Path(text).is_file():
        if not Path(text).is_file():
            raise LoRAError(f"{text}: no such LoRA adapter file")
        return Path(text)
    tried = list(dict.fromkeys([eval_lora_path(generation, base_dir, text, hidden),
                                lora_weights_path(generation, base_dir, text, hidden, use_moe),
                                lora_weights_path(generation, Path(base_dir) / "lora", text, hidden, use_moe)]))
    for path in tried:
        if path.is_file():
            return path
    raise LoRAError(f"--lora_weight {text}: no adapter file found (looked for {', '.join(map(str, tried))}); "
                    f"pass the file's path")


def adapters_beside(weights) -> list[Path]:
    """The adapter files in the folder of the weights file `weights` and in its lora/ subfolder (where each
    generation's trainer and chat script put them), by name; only files whose keys are all adapter keys (read
    without loading the tensors)."""
    weights = Path(weights)
    found = []
    for folder in (weights.parent, weights.parent / "lora"):
        for path in sorted(folder.glob("*.pth")) if folder.is_dir() else ():
            if path != weights and _is_adapter_file(path):
                found.append(path)
    return found


def _is_adapter_file(path: Path) -> bool:
    try:  # mmap: only the file's index is read, whatever the size of the tensors in it
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not offered
        return False
    return isinstance(state, dict) and bool(state) and all(isinstance(k, str) and _ADAPTER_KEY.fullmatch(k)
                                                           for k in state)


# ---- merging -----------------------------------------------------------------------------------------------
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer's weight and take the adapters off; returns the model.

    minimind-3's merge_lora: each adapted weight becomes fp16(W) + fp16(B @ A), added in fp16, which is what its
    merged file holds (it writes every tensor in fp16). MiniMind2, whose full weights are fp16 files too, merges
    the same way; v1, whose files are fp32, adds in fp32. So the merged model in memory is exactly what the
    generation's weights file of it holds (save_minimind), and differs from base + adapter by that rounding."""
    from .generations import weights_dtype  # generations imports the network, which imports int8 -> lora

    dtype = weights_dtype(_generation(model))
    with torch.no_grad():
        for _, layer in list(adapted_layers(model)):
            delta = layer.lora.B.weight.float() @ layer.lora.A.weight.float()     # (out, in), as upstream
            merged = layer.weight.to(dtype) + delta.to(dtype)
            layer.weight.copy_(merged.to(layer.weight.dtype))
            _detach(layer)
    return model


# ---- helpers -----------------------------------------------------------------------------------------------
def _attach(layer: nn.Linear, lora: LoRA) -> None:
    layer.lora = lora  # a submodule: its weights are in the model's state_dict, .to() and deepcopy
    layer.__class__ = LoRALinear


def _detach(layer: nn.Linear) -> None:
    del layer.lora
    layer.__class__ = nn.Linear


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile'd
    return getattr(model, "module", model)      # DDP


def _generation(model: nn.Module) -> str:
    return getattr(_unwrap(model), "generation", "v1")


def _file_key(name: str, generation: str) -> str:
    return name if generation == "v1" else key_names.hf_key(name)


def _adapter_pairs(state: dict[str, torch.Tensor], source: object) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer (v1's module name): (A, B)} of an adapter file; a layer with only one of the two is an error."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _ADAPTER_KEY.fullmatch(key)
        assert match is not None  # adapter_generation checked every key
        parts.setdefault(key_names.v1_key(match.group(1)), {})[match.group(2)] = tensor
    pairs = {}
    for name, found in parts.items():
        if set(found) != {"A", "B"} or found["A"].dim() != 2 or found["B"].dim() != 2:
            raise LoRAError(f"{source}: the adapter of {name} is incomplete (needs a 2-D A and B weight); the "
                            f"file is damaged")
        pairs[name] = (found["A"], found["B"])
    return pairs
