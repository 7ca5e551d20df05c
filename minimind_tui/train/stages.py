"""What each training mode does differently inside the one loop: its loss, what trains, what else it holds.

pretrain and sft: the masked cross-entropy (pass_loss). lora: the same loss, with only the adapters
(model/lora.py) trainable and the adapter file as its output. dpo: MiniMind's DPO loss against a frozen copy
of the starting weights, on chosen/rejected pairs run in one padded pass (batching.PairCollator).
distill: the data's cross-entropy plus the KL to a frozen teacher's softened logits.

A Stage computes one forward pass's share of the step's loss (`pass_loss`, the same contract as the plain
one: the shares of a step's passes add up to the batch's loss, with gradients matching one pass over the
whole batch), and keeps the step's figures (DPO's rewards, distillation's two parts) until the loop logs
them (`step_fields`, read only at log steps: reading waits for the device).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

from dataset.batching import PackedBatch
from minimind_tui.errors import UserError
from model.checkpoint import CheckpointError

from . import objectives


def pass_loss(model, batch, n_mask: float, row_share: float, world_size: int = 1, device="cpu"):
    """One forward pass's share of the batch loss: its summed cross-entropy over the batch's mask count.

    Summed over the passes of a batch this is MiniMind's (CE * mask).sum() / mask.sum() over the whole
    batch (plus the MoE aux loss, weighted by each pass's share of rows). Under DDP, n_mask is the
    global batch's count and the world size undoes DDP's gradient averaging, so the gradient equals one
    process's over the whole global batch.
    """
    X = batch.X.to(device, non_blocking=True)
    Y = batch.Y.to(device, non_blocking=True)
    # The loss-mask rows come from the collator: no nonzero() on the device, so no wait for it.
    rows = batch.loss_rows.to(device, non_blocking=True)
    packed: dict = {}
    if isinstance(batch, PackedBatch):  # one unpadded row: RoPE positions and attention restart per sample
        packed = dict(positions=batch.positions.to(device, non_blocking=True), spans=batch.spans)
    out = model(X, labels=Y, loss_rows=rows, return_logits=False, **packed)  # vocab projection on mask rows only
    n_here = max(len(batch.loss_rows), 1)
    ce_sum = (out.loss - out.aux_loss) * n_here
    return ce_sum * (world_size / max(n_mask, 1.0)) + out.aux_loss * row_share


class Stage:
    """pretrain, sft: the plain language-model loss, every weight trained, full weights as the output."""
    packs = True  # may its batches be packed rows / length-sorted passes (loop.make_collator)

    def __init__(self, settings: dict, log: Callable[[str], None] = print):
        self.settings = settings
        self.log = log
        self._figures: dict[str, torch.Tensor] = {}
        self._weight = 0.0

    def before_load(self, model) -> None:
        """Called on a resumed run's model before its checkpoint is loaded into it."""

    def after_init(self, model, device: str) -> None:
        """Called once the model holds its starting weights (init or checkpoint) and sits on `device`."""

    def trainable(self, model) -> list[torch.nn.Parameter]:
        return list(model.parameters())

    def pass_loss(self, module, batch, n_mask: float, row_share: float, world_size: int, device: str):
        return pass_loss(module, batch, n_mask, row_share, world_size, device)

    def eval_pass(self, module, batch, device: str) -> tuple[torch.Tensor, int]:
        """(summed loss, count) of one validation pass; the validation loss is their ratio over the set."""
        return pass_loss(module, batch, 1.0, 0.0, 1, device).float(), int(batch.loss_mask.sum())

    # ----- the step's figures -----
    def _keep(self, figures: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        """Add a pass's figures, weighted as the pass weighs in the loss (its trained tokens, for a mean over
        tokens); step_fields gives their weighted mean."""
        for name, value in figures.items():
            self._figures[name] = self._figures.get(name, 0) + value.detach().float() * weight
        self._weight += weight

    def step_fields(self) -> dict[str, float]:
        """The figures of the passes since the last call, averaged (waits for the device), then forgotten."""
        fields = {k: float(v) / max(self._weight, 1e-12) for k, v in self._figures.items()}
        self._figures, self._weight = {}, 0.0
        return fields


class LoRAStage(Stage):
    """MiniMind's train_lora: an adapter on every square linear layer, only the adapters trained."""

    def before_load(self, model) -> None:
        self._attach(model)  # the checkpoint holds the adapters too

    def after_init(self, model, device: str) -> None:
        from model.lora import has_adapter

        if not has_adapter(model):
            self._attach(model)
            model.to(device)

    def _attach(self, model) -> None:
        from model.lora import LoRAError, apply_lora

        torch.manual_seed(self.settings["seed"])  # the adapters' random A matrices, a function of the seed
        try:
            apply_lora(model)
        except LoRAError as e:
            raise UserError(f"train lora: {e}") from None

    def trainable(self, model) -> list[torch.nn.Parameter]:
        from model.lora import freeze_all_but_lora

        return freeze_all_but_lora(model)


class DPOStage(Stage):
    """MiniMind's train_dpo: the policy against a frozen reference (the starting weights), beta and the
    per-sequence averaging of the generation (objectives.DPO_AVERAGING). Both sides of each pair in one pass."""
    packs = False

    def __init__(self, settings: dict, log=print, reference_weights: Callable[[], torch.nn.Module] | None = None):
        super().__init__(settings, log)
        self.reference: torch.nn.Module | None = None
        self._reference_weights = reference_weights
        self.average = objectives.DPO_AVERAGING[settings.get("generation") or "v1"]

    def after_init(self, model, device: str) -> None:
        # The reference is the weights the run started from: on a fresh run the model now; on a resumed one
        # the --init file again (the checkpoint holds the trained policy). Inference only: no gradients, no
        # optimizer state, so DPO costs one more copy of the weights and a forward pass per batch.
        source = self._reference_weights() if self._reference_weights else model
        self.reference = copy.deepcopy(source).to(device).eval().requires_grad_(False)

    def _sequence_logprobs(self, model, batch, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sequence log-probabilities (2B,), the policy's MoE aux loss) over each row's trained tokens."""
        X = batch.X.to(device, non_blocking=True)
        Y = batch.Y.to(device, non_blocking=True)
        rows = batch.loss_rows.to(device, non_blocking=True)
        out = model(X, logits_rows=rows, return_logits=False)
        token = objectives.token_logprobs(out.logits, Y.flatten().index_select(0, rows))
        sample = torch.div(rows, X.shape[1], rounding_mode="floor")
        total = torch.zeros(X.shape[0], device=token.device).index_add(0, sample, token)
        if self.average == "mean":
            counts = torch.zeros(X.shape[0], device=token.device).index_add(0, sample, torch.ones_like(token))
            total = total / counts.clamp_min(1e-8)
        return total, out.aux_loss

    def _result(self, module, batch, device: str):
        policy, aux = self._sequence_logprobs(module, batch, device)
        with torch.no_grad():
            ref, _ = self._sequence_logprobs(self.reference, batch, device)
        chosen, rejected = objectives.split_pairs(policy)
        ref_chosen, ref_rejected = objectives.split_pairs(ref)
        return objectives.dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.settings["beta"]), aux

    def pass_loss(self, module, batch, n_mask, row_share, world_size, device):
        # One pass per micro-batch; DDP's gradient average over ranks is the mean over the global batch's pairs.
        result, aux = self._result(module, batch, device)
        self._keep({"reward_chosen": result.reward_chosen, "reward_rejected": result.reward_rejected,
                    "reward_margin": result.reward_margin, "reward_accuracy": result.reward_accuracy})
        return result.loss + aux

    def eval_pass(self, module, batch, device):
        result, _ = self._result(module, batch, device)
        pairs = batch.X.shape[0] // 2
        return result.loss.float() * pairs, pairs


class DistillStage(Stage):
    """MiniMind's train_distillation: alpha * CE + (1 - alpha) * T^2 * KL(teacher || student) on the trained
    positions; the teacher frozen, in bf16 on a GPU that computes it."""
    packs = False  # the teacher runs on the same padded passes (a MoE teacher cannot take packed rows)

    def __init__(self, settings: dict, log=print, teacher_file: Path | None = None):
        super().__init__(settings, log)
        self.teacher_file = teacher_file
        self.teacher: torch.nn.Module | None = None

    def after_init(self, model, device: str) -> None:
        from minimind_tui.chat.loading import load_weights

        try:  # what the shapes cannot tell (heads) from what our trainer recorded with the file, if anything
            teacher = load_weights(self.teacher_file)
        except CheckpointError as e:
            raise UserError(f"teacher: {e}") from None
        if teacher.config.vocab_size < model.config.vocab_size:
            raise UserError(f"{self.teacher_file}: the teacher's vocabulary ({teacher.config.vocab_size}) is smaller "
                            f"than the student's ({model.config.vocab_size}); they must share a tokenizer")
        dtype = self.settings.get("dtype")
        if device.startswith("cuda") and dtype in ("bfloat16", "float16"):
            teacher = teacher.to(getattr(torch, dtype))
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.log(f"teacher: {self.teacher_file} ({teacher.num_parameters() / 1e6:.2f}M parameters, "
                 f"{teacher.generation})")

    def _result(self, module, batch, device: str):
        X = batch.X.to(device, non_blocking=True)
        Y = batch.Y.to(device, non_blocking=True)
        rows = batch.loss_rows.to(device, non_blocking=True)
        out = module(X, logits_rows=rows, return_logits=False)
        with torch.no_grad():
            teacher = self.teacher(X, logits_rows=rows, return_logits=False).logits
        s = self.settings
        labels = Y.flatten().index_select(0, rows)
        return objectives.distill_loss(out.logits, teacher, labels, None, s["alpha"], s["temperature"]), out.aux_loss

    def pass_loss(self, module, batch, n_mask, row_share, world_size, device):
        result, aux = self._result(module, batch, device)
        self._keep({"ce_loss": result.ce, "distill_loss": result.kl}, weight=len(batch.loss_rows))
        # The pass's loss is a mean over its rows: weighted by its share of the batch's trained tokens, the
        # passes add up to the batch's mean (as pass_loss's sums over the mask count do).
        share = max(len(batch.loss_rows), 1) * world_size / max(n_mask, 1.0)
        return result.loss * share + self.settings["alpha"] * aux * row_share

    def eval_pass(self, module, batch, device):
        result, _ = self._result(module, batch, device)
        n = max(len(batch.loss_rows), 1)
        return result.loss.float() * n, n


def stage_for(settings: dict, log=print, reference_weights=None, teacher_file: Path | None = None) -> Stage:
    mode = settings["mode"]
    if mode == "lora":
        return LoRAStage(settings, log)
    if mode == "dpo":
        return DPOStage(settings, log, reference_weights)
    if mode == "distill":
        return DistillStage(settings, log, teacher_file)
    return Stage(settings, log)
