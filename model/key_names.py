"""Checkpoint key names of every MiniMind generation, and which generation a checkpoint's keys are.

The network's modules keep v1's names (tok_embeddings, layers.N.attention.wq, feed_forward.w1, ...) for
every generation, so the forward and v1's seeded initialisation stay as they are; a MiniMind2 or minimind-3
model renames its keys when it saves or loads a state dict (MiniMindLM registers the hooks), part by part
through the table below. Torch-free.
"""
from __future__ import annotations

from collections.abc import Iterable

# v1 name -> Hugging Face-style name (MiniMind2, minimind-3), one dot-separated part at a time. Parts not
# listed keep their name in both: layers, experts, gate, shared_experts, q_norm, k_norm, norm, weight, indices.
HF_PART = {
    "tok_embeddings": "embed_tokens",
    "output": "lm_head",
    "attention": "self_attn",
    "wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj",
    "attention_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "feed_forward": "mlp",
    "w1": "gate_proj", "w2": "down_proj", "w3": "up_proj",
}
V1_PART = {hf: v1 for v1, hf in HF_PART.items()}
HF_BODY = "model."  # everything but lm_head sits under MiniMindForCausalLM.model


def hf_key(key: str) -> str:
    """v1's name of a weight -> MiniMind2's / minimind-3's: layers.0.attention.wq.weight ->
    model.layers.0.self_attn.q_proj.weight."""
    parts = [HF_PART.get(p, p) for p in key.split(".")]
    name = ".".join(parts)
    return name if parts[0] == "lm_head" else HF_BODY + name


def v1_key(key: str) -> str:
    """The inverse of hf_key; a name that is already v1's comes back unchanged."""
    if key.startswith(HF_BODY):
        key = key[len(HF_BODY):]
    return ".".join(V1_PART.get(p, p) for p in key.split("."))


def detect_generation(keys: Iterable[str]) -> str | None:
    """"v1", "gen2" or "gen3" from a state dict's keys (in their order); None if they are no MiniMind's.

    v1's names differ from the other two's. minimind-3 normalises q and k (self_attn.q_norm); its MoE also
    registers the gate before the experts and has no shared expert, where MiniMind2's has experts, gate,
    shared_experts.0 in that order."""
    keys = list(keys)
    names = set(keys)
    if "tok_embeddings.weight" in names or "output.weight" in names or any(k.startswith("layers.") for k in keys):
        return "v1"
    if not ({"model.embed_tokens.weight", "lm_head.weight"} & names or any(k.startswith("model.layers.")
                                                                           for k in keys)):
        return None
    if any(k.endswith(".self_attn.q_norm.weight") for k in keys):
        return "gen3"
    layer0 = [k for k in keys if k.startswith("model.layers.0.mlp.")]
    if any(".mlp.experts." in k for k in layer0):
        gate_first = layer0[0] == "model.layers.0.mlp.gate.weight"
        if gate_first and not any(".mlp.shared_experts." in k for k in layer0):
            return "gen3"
    return "gen2"


# A weights file's pickle is metadata only (the tensors are separate entries of the zip): a few KB to a few MB.
_MAX_PICKLE_BYTES = 64 << 20


def stored_keys(path) -> list[str]:
    """The key names a weights file or Hugging Face folder stores, in order, without loading a tensor (nor
    torch): safetensors name them in a JSON header; a torch.save file is a zip whose pickle holds them as
    strings, read here opcode by opcode with pickletools, which builds and runs nothing. Other strings of the
    pickle come along (module and storage names), which no MiniMind key resembles. [] when unreadable."""
    import json
    import pickletools
    import zipfile
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
        return stored_keys(found[0]) if found else []
    try:
        if path.suffix == ".safetensors":
            with open(path, "rb") as f:
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(min(size, _MAX_PICKLE_BYTES)))
            return [k for k in header if k != "__metadata__"]
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            if name is None or archive.getinfo(name).file_size > _MAX_PICKLE_BYTES:
                return []
            data = archive.read(name)
        return [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str) and "UNICODE" in op.name]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return []
