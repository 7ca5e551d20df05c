"""The losses of MiniMind's stages after SFT, apart from the loop that uses them: DPO and knowledge distillation.

Pure torch, nothing of the trainer's plumbing: each takes logits (or sequence log-probabilities) and returns the
loss with the figures a user watches. Positions are aligned as in the trainer: logits[:, t] predicts
targets[:, t] (DPODataset's x / y / mask are already shifted; MiniMind2's unshifted SFT labels are shifted
by the caller: logits[:, :-1] against labels[:, 1:]).

    policy = sequence_logprobs(model(x).logits, y, mask, DPO_AVERAGING[generation])
    with torch.no_grad():
        ref = sequence_logprobs(ref_model(x).logits, y, mask, DPO_AVERAGING[generation])
    chosen, rejected = split_pairs(policy)
    ref_chosen, ref_rejected = split_pairs(ref)
    out = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, DPO_BETA[generation])
    out.loss.backward(); out.metrics()  # {"loss", "reward_chosen", "reward_rejected", "reward_margin", ...}
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# How each generation's train_dpo.py turns a sequence's token log-probabilities into one number, and its beta.
# v1 and MiniMind2: the mean over the trained tokens; minimind-3: their sum. v1 divides by the token count as
# it is, so a pair without any trained token (cut off by max_seq_len) makes the whole batch's loss NaN;
# MiniMind2 clamps the count at 1e-8, which gives that row 0. Both use MiniMind2's guard here.
DPO_AVERAGING = {"v1": "mean", "gen2": "mean", "gen3": "sum"}
DPO_BETA = {"v1": 0.1, "gen2": 0.1, "gen3": 0.15}  # v1 fixed in its code; MiniMind2 and minimind-3 --beta

PAIR_KEYS = ("x", "y", "mask")  # DPODataset's x_chosen, y_chosen, mask_chosen, x_rejected, ...


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets[b, t]) under logits[b, t], in fp32: (B, T, V), (B, T) -> (B, T). MiniMind's
    logits_to_log_probs (log_softmax, then gather), as a gather minus a logsumexp: the same numbers without a
    second (B, T, V) tensor. A target of -100 (no label) gives the log-probability of token 0."""
    logits = logits.float()
    picked = logits.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked - logits.logsumexp(dim=-1)


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                      average: str = "mean") -> torch.Tensor:
    """One log-probability per sequence (B,) over its trained tokens: positions where `mask` is nonzero (and
    the target is not -100; with mask None, every position whose target is not -100). average "mean" divides
    by their number (clamped at 1e-8, MiniMind2's guard: a row without any gives 0), "sum" does not
    (minimind-3). See DPO_AVERAGING."""
    if average not in ("mean", "sum"):
        raise ValueError(f"average must be 'mean' or 'sum', not {average!r}")
    keep = targets != -100
    weights = keep.float() if mask is None else mask.float() * keep
    total = (token_logprobs(logits, targets) * weights).sum(dim=1)
    if average == "sum":
        return total
    return total / weights.sum(dim=1).clamp_min(1e-8)


def concat_pairs(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, y, mask) of a DPODataset batch with the chosen rows first, then the rejected ones, as MiniMind runs
    them through the model in one forward; split_pairs takes the results apart again."""
    x, y, mask = (torch.cat([batch[f"{key}_chosen"], batch[f"{key}_rejected"]], dim=0) for key in PAIR_KEYS)
    return x, y, mask


def split_pairs(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) halves of per-sequence values computed on concat_pairs' rows."""
    half = values.shape[0] // 2
    return values[:half], values[half:]


@dataclass
class DPOResult:
    """The loss (with its graph) and, detached, what a DPO user watches (TRL's rewards/*): each side's implicit
    reward beta * (log pi - log pi_ref), their margin, and the share of pairs where the chosen reply's reward
    beats the rejected one's. Means over the batch; tensors, so the trainer decides when to sync."""
    loss: torch.Tensor
    reward_chosen: torch.Tensor
    reward_rejected: torch.Tensor
    reward_margin: torch.Tensor
    reward_accuracy: torch.Tensor

    def metrics(self) -> dict[str, float]:
        """The figures as floats (waits for the device), under the names metrics.jsonl uses."""
        return {name: float(getattr(self, name).detach()) for name in
                ("loss", "reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy")}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> DPOResult:
    """MiniMind's DPO loss (every generation): mean over pairs of -log sigmoid(beta * ((pi_c - pi_r) -
    (ref_c - ref_r))), from per-sequence log-probabilities (B,) averaged as the generation does
    (sequence_logprobs with DPO_AVERAGING)."""
    policy_margin = policy_chosen - policy_rejected
    ref_margin = ref_chosen - ref_rejected
    loss = -F.logsigmoid(beta * (policy_margin - ref_margin)).mean()
    chosen = beta * (policy_chosen - ref_chosen).detach()
    rejected = beta * (policy_rejected - ref_rejected).detach()
    return DPOResult(loss=loss, reward_chosen=chosen.mean(), reward_rejected=rejected.mean(),
                     reward_margin=(chosen - rejected).mean(), reward_accuracy=(chosen > rejected).float().mean())


@dataclass
class DistillResult:
    """The loss (with its graph) and its two parts, detached: the data's cross-entropy (with the student's
    MoE balance loss, as MiniMind adds it) and the T^2-scaled KL divergence from the teacher."""
    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {"loss": float(self.loss.detach()), "ce_loss": float(self.ce), "distill_loss": float(self.kl)}


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 mask: torch.Tensor | None = None, alpha: float = 0.5, temperature: float = 1.5,
                 aux_loss: torch.Tensor | float = 0.0) -> DistillResult:
    """MiniMind2's and minimind-3's train_distillation loss: alpha * CE + (1 - alpha) * T^2 * KL.

    student_logits (B, T, V) and teacher_logits (B, T, V' >= V; cut to the student's V) at positions whose
    targets are labels (B, T); the trained positions are those where `mask` is nonzero and the label is not
    -100 (mask None: every labelled one). CE: the student's mean cross-entropy on the labels there (+ aux_loss,
    the student's MoE balance loss, which MiniMind adds to this part). KL: KL(teacher || student) of the
    softened distributions softmax(logits / T), summed over the vocabulary and averaged over the trained
    positions (F.kl_div's batchmean on those rows), times T^2 to keep its gradients' scale. The teacher gets no
    gradient. (v1's script is pure KL at T 1: alpha 0, temperature 1.) A batch without trained positions
    gives 0 for both parts, where MiniMind's KL would be NaN."""
    vocab = student_logits.shape[-1]
    keep = labels != -100
    if mask is not None:
        keep = keep & (mask != 0)
    rows = keep.reshape(-1).nonzero().squeeze(1)
    n = max(len(rows), 1)
    student = student_logits.reshape(-1, vocab).index_select(0, rows).float()
    teacher = teacher_logits.detach()[..., :vocab].reshape(-1, vocab).index_select(0, rows).float()
    ce = F.cross_entropy(student, labels.reshape(-1).index_select(0, rows), reduction="sum") / n + aux_loss
    teacher_probs = F.softmax(teacher / temperature, dim=-1)
    student_logprobs = F.log_softmax(student / temperature, dim=-1)
    kl = F.kl_div(student_logprobs, teacher_probs, reduction="sum") / n * temperature ** 2
    loss = alpha * ce + (1 - alpha) * kl
    return DistillResult(loss=loss, ce=ce.detach(), kl=kl.detach())
