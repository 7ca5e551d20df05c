"""The model's forward over a packed batch: all samples in one row, no padding computed at all.

Same parameters and the same arithmetic as MiniMindLM.forward, but every matrix multiply sees the
batch's real tokens only (one tall matrix instead of B padded rows), attention runs per sample, and
RoPE positions restart at each sample. The loss is MiniMind's mean cross-entropy over the batch's
loss-mask tokens. Dense models only: the MoE balance loss is defined per padded sequence, so MoE runs
use the chunked path. tests/unit/test_train_packed.py checks loss and gradients against the model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.model import LMOutput, MiniMindLM, apply_rope


class PackedLM(nn.Module):
    """Wraps a MiniMindLM (parameters shared, not copied) so DDP and torch.compile see one forward."""

    def __init__(self, model: MiniMindLM):
        super().__init__()
        if model.config.use_moe:
            raise ValueError("packed batches are for dense models")
        self.model = model

    def forward(self, X, Y, loss_mask, positions, spans) -> LMOutput:
        m = self.model
        N = X.shape[1]
        h = m.dropout(m.tok_embeddings(X))                                     # (1, N, dim)
        cos, sin = m.rope_cos[positions], m.rope_sin[positions]                # (N, head_dim/2)
        for layer in m.layers:
            att = layer.attention
            x = layer.attention_norm(h)
            q = apply_rope(att.wq(x).view(1, N, att.n_heads, att.head_dim), cos, sin)
            k = apply_rope(att.wk(x).view(1, N, att.n_kv_heads, att.head_dim), cos, sin)
            v = att.wv(x).view(1, N, att.n_kv_heads, att.head_dim)
            dropout_p = att.dropout if self.training else 0.0
            outs = []
            for s, e in spans:  # each sample attends causally to itself only
                qs = q[:, s:e].transpose(1, 2)                                 # (1, H, L, hd)
                ks = k[:, s:e].transpose(1, 2).repeat_interleave(att.n_rep, dim=1)
                vs = v[:, s:e].transpose(1, 2).repeat_interleave(att.n_rep, dim=1)
                outs.append(F.scaled_dot_product_attention(qs, ks, vs, dropout_p=dropout_p, is_causal=True)
                            .transpose(1, 2))                                  # (1, L, H, hd)
            h = h + att.resid_dropout(att.wo(torch.cat(outs, dim=1).reshape(1, N, -1)))
            h = h + layer.feed_forward(layer.ffn_norm(h))
        return LMOutput(logits=None, aux_loss=h.new_zeros(()), loss=masked_loss_in_slices(m, h, Y, loss_mask))


LOSS_ROWS = 512  # loss-mask rows per slice: (512, vocab) logits stay in the CPU cache


def masked_loss_in_slices(m: MiniMindLM, h, labels, loss_mask):
    """MiniMindLM.masked_loss (mean CE over mask positions, vocab projection on those rows only), taken
    a slice of rows at a time: one (rows, vocab) softmax over the whole batch is memory-bound, small
    slices are not. Same sum, same mean."""
    keep = loss_mask.reshape(-1).nonzero().squeeze(1)
    hidden = h.reshape(-1, h.shape[-1])
    targets = labels.reshape(-1)
    total = h.new_zeros((), dtype=torch.float32)
    for start in range(0, len(keep), LOSS_ROWS):
        rows = keep[start:start + LOSS_ROWS]
        logits = m.output(m.norm(hidden.index_select(0, rows)))
        total = total + F.cross_entropy(logits.float(), targets.index_select(0, rows), reduction="sum")
    return total / loss_mask.sum().clamp(min=1)
