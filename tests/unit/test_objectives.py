"""DPO and distillation losses (minimind_tui/train/objectives.py) against MiniMind's own formulas, written out
here as upstream's train_dpo.py / train_distillation.py have them, on the reference DPO cases of MiniMind2 and
minimind-3 and on a tiny model."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dataset import DPODataset
from minimind_tui.train.objectives import (
    DPO_AVERAGING,
    DPO_BETA,
    concat_pairs,
    distill_loss,
    dpo_loss,
    sequence_logprobs,
    split_pairs,
    token_logprobs,
)
from model import MiniMindLM, load_minimind, make_config


# ---- upstream's code, transcribed -------------------------------------------------------------------------
def upstream_logits_to_log_probs(logits, labels):
    log_probs = F.log_softmax(logits, dim=2)
    return torch.gather(log_probs, dim=2, index=labels.unsqueeze(2)).squeeze(-1)


def upstream_dpo_loss(ref_log_probs, policy_log_probs, mask, beta, average):
    """MiniMind2's dpo_loss (average "mean") and minimind-3's (average "sum"); chosen rows first."""
    if average == "mean":
        seq_lengths = mask.sum(dim=1, keepdim=True).clamp_min(1e-8)
        ref_log_probs = (ref_log_probs * mask).sum(dim=1) / seq_lengths.squeeze()
        policy_log_probs = (policy_log_probs * mask).sum(dim=1) / seq_lengths.squeeze()
    else:
        ref_log_probs = (ref_log_probs * mask).sum(dim=1)
        policy_log_probs = (policy_log_probs * mask).sum(dim=1)
    batch_size = ref_log_probs.shape[0]
    chosen_ref_log_probs = ref_log_probs[:batch_size // 2]
    reject_ref_log_probs = ref_log_probs[batch_size // 2:]
    chosen_policy_log_probs = policy_log_probs[:batch_size // 2]
    reject_policy_log_probs = policy_log_probs[batch_size // 2:]
    pi_logratios = chosen_policy_log_probs - reject_policy_log_probs
    ref_logratios = chosen_ref_log_probs - reject_ref_log_probs
    logits = pi_logratios - ref_logratios
    return (-F.logsigmoid(beta * logits)).mean()


def upstream_distillation(student_logits, teacher_logits, labels, alpha, temperature):
    """train_distillation.py's loss for one batch, on already shifted logits and labels."""
    loss_mask_flat = (labels != -100).float().view(-1)
    teacher_logits = teacher_logits[..., :student_logits.size(-1)]
    ce = F.cross_entropy(student_logits.view(-1, student_logits.size(-1)), labels.view(-1), ignore_index=-100,
                         reduction="none")
    ce = torch.sum(ce * loss_mask_flat) / (loss_mask_flat.sum() + 1e-8)
    s = student_logits.view(-1, student_logits.size(-1))[loss_mask_flat == 1]
    t = teacher_logits.reshape(-1, teacher_logits.size(-1))[loss_mask_flat == 1]
    with torch.no_grad():
        teacher_probs = F.softmax(t / temperature, dim=-1).detach()
    kl = F.kl_div(F.log_softmax(s / temperature, dim=-1), teacher_probs, reduction="batchmean")
    return alpha * ce + (1 - alpha) * (temperature ** 2) * kl


# ---- DPO on the reference cases ----------------------------------------------------------------------------
@pytest.mark.parametrize("average", ["mean", "sum"])
def test_dpo_loss_on_the_reference_cases_is_upstreams(gen, average):
    """DPODataset's batches of the generation's six reference pairs (upstream's tensors, at both lengths: at 64
    some replies are cut), its reference model as the policy and a perturbed copy as the reference model: our
    loss is upstream's, for both averaging rules."""
    name, tok, ref = gen
    expected = torch.load(ref / "dpo_expected.pt", weights_only=True)
    io = torch.load(ref / "dense_io.pt", weights_only=True)
    # A longer RoPE table than the fixture's 128 positions (same angles, no YaRN) for the 192-token rows.
    policy = load_minimind(ref / "dense.pth", **{**io["config"], "max_position_embeddings": 256})
    reference = copy.deepcopy(policy)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for L in expected["max_lengths"]:
        ds = DPODataset(ref / "dpo_cases.jsonl", tok, max_length=L, empty_think_ratio=1.0)
        batch = {key: torch.stack([ds[i][key] for i in range(len(ds))]) for key in ds[0]}
        assert all(torch.equal(batch[k], expected["plain"][L][k]) for k in batch)
        x, y, mask = concat_pairs(batch)
        with torch.no_grad():
            policy_logits, ref_logits = policy(x).logits, reference(x).logits
        ours_policy = sequence_logprobs(policy_logits, y, mask, average)
        ours_ref = sequence_logprobs(ref_logits, y, mask, average)
        out = dpo_loss(*split_pairs(ours_policy), *split_pairs(ours_ref), beta=DPO_BETA[name])
        theirs = upstream_dpo_loss(upstream_logits_to_log_probs(ref_logits, y),
                                   upstream_logits_to_log_probs(policy_logits, y), mask, DPO_BETA[name], average)
        assert out.loss.item() == pytest.approx(theirs.item(), rel=1e-5, abs=1e-6), L
        assert abs(out.loss.item() - math.log(2)) > 1e-3  # the two models differ: not the trivial value
    assert DPO_AVERAGING[name] == ("sum" if name == "gen3" else "mean")


def test_token_logprobs_are_log_softmax_then_gather():
    torch.manual_seed(0)
    logits, targets = 3 * torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(token_logprobs(logits, targets), upstream_logits_to_log_probs(logits, targets))


def test_sequence_logprobs_average_rules_and_labels():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 4, 7), torch.randint(0, 7, (3, 4))
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    per_token = upstream_logits_to_log_probs(logits, targets)
    summed = (per_token * mask).sum(1)
    torch.testing.assert_close(sequence_logprobs(logits, targets, mask, "sum"), summed)
    torch.testing.assert_close(sequence_logprobs(logits, targets, mask, "mean"),
                               torch.stack([summed[0] / 2, summed[1] / 4, torch.tensor(0.0)]))
    # SFT-style labels (-100 where not trained) work without a mask
    labels = targets.masked_fill(mask == 0, -100)
    torch.testing.assert_close(sequence_logprobs(logits, labels, average="sum"), summed)
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        sequence_logprobs(logits, targets, mask, "max")


def test_dpo_metrics_at_the_start_and_their_meaning():
    same = torch.tensor([-1.0, -2.0])
    out = dpo_loss(same, same - 1, same, same - 1, beta=0.1)  # policy == reference
    assert out.metrics() == pytest.approx({"loss": math.log(2), "reward_chosen": 0.0, "reward_rejected": 0.0,
                                           "reward_margin": 0.0, "reward_accuracy": 0.0})
    out = dpo_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0]),
                   torch.tensor([-2.0, -2.0]), beta=0.5)
    m = out.metrics()
    assert m["reward_chosen"] == pytest.approx(0.5 * (1 + -1) / 2)
    assert m["reward_rejected"] == 0.0 and m["reward_accuracy"] == 0.5
    assert m["reward_margin"] == pytest.approx(0.0)
    assert m["loss"] == pytest.approx(-(F.logsigmoid(torch.tensor(0.5)) + F.logsigmoid(torch.tensor(-0.5))).item() / 2)


@pytest.mark.parametrize("average", ["mean", "sum"])
def test_dpo_steps_raise_the_chosen_over_rejected_margin(average):
    """A few optimizer steps on a tiny model: the implicit reward margin grows and the loss falls below log 2."""
    torch.manual_seed(0)
    policy = MiniMindLM(make_config("gen2", hidden_size=32, num_hidden_layers=2, vocab_size=64,
                                    max_position_embeddings=32))
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    B, T = 4, 12
    prompt = torch.randint(3, 64, (B, 6))
    batch = {"x_chosen": torch.cat([prompt, torch.randint(3, 64, (B, T - 6))], 1),
             "x_rejected": torch.cat([prompt, torch.randint(3, 64, (B, T - 6))], 1)}
    mask = torch.zeros(B, T, dtype=torch.long)
    mask[:, 5:] = 1  # the reply's tokens
    for side in ("chosen", "rejected"):
        batch[f"y_{side}"] = torch.roll(batch[f"x_{side}"], -1, dims=1)
        batch[f"mask_{side}"] = mask
    x, y, m = concat_pairs(batch)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    margins = []
    for _ in range(6):
        with torch.no_grad():
            ref = sequence_logprobs(reference(x).logits, y, m, average)
        out = dpo_loss(*split_pairs(sequence_logprobs(policy(x).logits, y, m, average)), *split_pairs(ref), 0.1)
        margins.append(out.metrics())
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert margins[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert margins[-1]["reward_margin"] > 0.01 and margins[-1]["reward_accuracy"] == 1.0
    assert margins[-1]["loss"] < math.log(2)


# ---- distillation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha,temperature", [(0.5, 1.5), (0.0, 1.0), (1.0, 2.0)])
def test_distill_loss_is_upstreams(alpha, temperature):
    torch.manual_seed(0)
    student = torch.randn(2, 6, 10, requires_grad=True)
    teacher = 2 * torch.randn(2, 6, 13)  # a larger vocabulary: cut to the student's
    labels = torch.randint(0, 10, (2, 6))
    labels[0, :3] = -100
    out = distill_loss(student, teacher, labels, alpha=alpha, temperature=temperature)
    theirs = upstream_distillation(student, teacher, labels, alpha, temperature)
    assert out.loss.item() == pytest.approx(theirs.item(), rel=1e-5)
    out.loss.backward()
    ours_grad = student.grad.clone()
    student.grad = None
    theirs.backward()
    torch.testing.assert_close(ours_grad, student.grad)


def test_distill_parts_mask_and_degenerate_batches():
    torch.manual_seed(0)
    student, labels = torch.randn(1, 4, 8), torch.randint(0, 8, (1, 4))
    same = distill_loss(student, torch.cat([student, torch.randn(1, 4, 3)], -1), labels, alpha=0.0)
    assert same.kl.item() == pytest.approx(0.0, abs=1e-6)  # the teacher's extra words are cut off
    mask = torch.tensor([[0, 1, 1, 0]])
    masked = distill_loss(student, student.flip(-1), labels, mask, alpha=1.0)
    assert masked.ce.item() == pytest.approx(F.cross_entropy(student[0, 1:3], labels[0, 1:3]).item())
    assert masked.metrics()["loss"] == pytest.approx(masked.ce.item())
    nothing = distill_loss(student, student.flip(-1), torch.full_like(labels, -100))
    assert nothing.loss.item() == 0.0
    with_aux = distill_loss(student, student.flip(-1), labels, alpha=0.5, aux_loss=torch.tensor(0.2))
    plain = distill_loss(student, student.flip(-1), labels, alpha=0.5)
    assert with_aux.loss.item() == pytest.approx(plain.loss.item() + 0.5 * 0.2)
