"""What the Train tab needs to know about the weights an SFT run starts from: which MiniMind generation they are
and the size of their network. No Textual here; the reader runs in the form's worker thread, where torch may be
imported (never at start-up)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BaseWeights:
    """A weights file as the trainer will see it. generation None: not MiniMind weights, or unreadable (the
    form's file checks and the trainer say why)."""
    generation: str | None
    dim: int = 0
    n_layers: int = 0
    use_moe: bool = False


def read_base_weights(path: Path) -> BaseWeights:
    """The generation (as the trainer tells it: recorded with the weights, else their key names, read without
    torch) and the sizes (the tensor shapes, read through a memory map: nothing is copied, a 100 MB file takes
    milliseconds)."""
    from minimind_tui.tokenizer_choice import recorded_meta, weights_generation

    generation = weights_generation(path, recorded_meta(path))
    if generation is None:
        return BaseWeights(None)
    from model import key_names  # torch from here on: only now, in a worker
    from model.checkpoint import CheckpointError, WeightShapes, load_state_dict

    try:
        state = load_state_dict(path, mmap=True)
        shapes = WeightShapes.of({key_names.v1_key(k): v for k, v in state.items()}, path)
    except (CheckpointError, OSError, ValueError, RuntimeError):
        return BaseWeights(None)
    return BaseWeights(generation, shapes.dim, shapes.n_layers, shapes.use_moe)
