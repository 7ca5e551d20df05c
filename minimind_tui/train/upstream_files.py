"""The files MiniMind2's and minimind-3's own trainers read and write, for runs started with their flags.

- out/ weights, `{save_weight}_{hidden}[_moe].pth`: the generation's own format (model/generations.py:
  v1 fp32, MiniMind2/minimind-3 fp16 under their key names), so upstream's eval_llm.py loads them.
- The resume file of `--from_resume`, `checkpoints/{weight}_{hidden}[_moe]_resume.pth` beside --out_dir
  (upstream's ../checkpoints beside ../out): `{model (fp16), optimizer, epoch, step, world_size, wandb_id,
  scaler}`, with a copy of the weights as `checkpoints/{weight}_{hidden}[_moe].pth`. Upstream's `step` counts
  the micro-batches done in `epoch`; ours, optimizer steps (groups of --accumulation_steps micro-batches).

Our own run checkpoints (checkpointing.py) stay the source of truth: these are written after them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from minimind_tui.errors import UserError
from model.checkpoint import save_atomic
from model.generations import in_generation_format

from . import checkpointing


def export(checkpoint: Path, weights: dict, target: Path, generation: str, adapter: bool = False) -> None:
    """The run's weights as the generation's trainer writes `target` (atomically); adapter: a LoRA run's
    adapters only, as the generation's save_lora writes them."""
    if generation == "v1" and not adapter:  # fp32 under v1's names: the checkpoint's own model.pth
        checkpointing.export_weights(checkpoint, target)
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    if adapter:
        from model.lora import ADAPTER_DTYPE

        # The weights' keys are already the generation's (the model renames them as it saves).
        save_atomic({k: v.to(ADAPTER_DTYPE[generation]) for k, v in weights.items() if ".lora." in k}, target)
    else:
        save_atomic(in_generation_format(weights, generation), target)


def write_resume(path: Path, weights: dict, generation: str, optimizer: dict, scaler: dict, epoch: int,
                 micro_batches: int, world_size: int) -> None:
    """Upstream's resume file and its weights copy, each atomically (weights first, as upstream does)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = in_generation_format(weights, generation)
    save_atomic(model, path.with_name(path.name.replace("_resume.pth", ".pth")))
    save_atomic({"model": model, "optimizer": optimizer, "epoch": epoch, "step": micro_batches,
                 "world_size": world_size, "wandb_id": None, "scaler": scaler}, path)


@dataclass
class Resume:
    path: Path
    model: dict
    optimizer: dict | None
    scaler: dict | None
    epoch: int
    micro_batches: int  # done in `epoch`, rescaled to this run's world size as upstream rescales them


def read_resume(path: Path, world_size: int) -> Resume:
    """An upstream (or our) resume file; a damaged one is a one-line error naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
        model, epoch, step = data["model"], int(data.get("epoch", 0)), int(data.get("step", 0))
        if not isinstance(model, dict):
            raise TypeError("its 'model' is not a state dict")
    except Exception as e:  # noqa: BLE001 - whatever a damaged or foreign file makes torch raise
        raise UserError(f"{path}: not a readable MiniMind resume file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''}); move it away, or pass "
                        f"--from_resume 0 to start over") from None
    saved_world = int(data.get("world_size") or 1)
    if saved_world != world_size:  # upstream's rule: the same samples seen, counted in this run's batches
        step = step * saved_world // world_size
    return Resume(Path(path), model, data.get("optimizer"), data.get("scaler"), epoch, step)


def optimizer_fits(optimizer: torch.optim.Optimizer, state: dict | None) -> bool:
    """Whether a saved AdamW state belongs to these parameters (same count and shapes, in order): upstream's
    module order and ours register parameters alike, but a file from another model must not be forced in."""
    if not state or len(state.get("param_groups", [])) != len(optimizer.param_groups):
        return False
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = state.get("state", {})
    if sum(len(g["params"]) for g in state["param_groups"]) != len(params):
        return False
    for i, p in enumerate(params):
        moments = saved.get(i, {})
        avg = moments.get("exp_avg") if isinstance(moments, dict) else None
        if avg is not None and tuple(avg.shape) != tuple(p.shape):
            return False
    return True
