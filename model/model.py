"""MiniMindLM: a Llama-style decoder whose state_dict matches MiniMind's key for key.

RMSNorm -> grouped-query attention with RoPE -> RMSNorm -> SwiGLU (or MoE) FFN, tied embeddings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import LMConfig
from .kv_cache import KVCache


@dataclass
class LMOutput:
    logits: torch.Tensor | None
    aux_loss: torch.Tensor | float = 0.0
    past_key_values: list | KVCache | None = None
    loss: torch.Tensor | None = None            # mean CE over loss_mask tokens (+ aux_loss), when labels given
    last_hidden_state: torch.Tensor | None = None  # before the final norm

    def __getitem__(self, key):  # MiniMind code indexes its output like a dict
        return getattr(self, key)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        if x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
            # One fused kernel instead of six: the same fp32 arithmetic, and it matters when decoding
            # one token at a time, where per-operation overhead dominates.
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # Normalise in fp32 even under autocast, as MiniMind does.
        return self.weight * (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


def rope_tables(head_dim: int, end: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for RoPE on interleaved pairs (x0,x1),(x2,x3)...: MiniMind's complex-number layout."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(end).float(), freqs)  # (end, head_dim/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_even, x_odd) by their position's angle: x: (B, T, H, hd); cos/sin: (T, hd/2).

    As MiniMind does it, a complex multiplication (x_even + i x_odd) * e^{i angle}: few kernels, and the
    same rounding as the reference."""
    rot = torch.complex(cos, sin)[None, :, None, :]                       # (1, T, 1, hd/2)
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))          # (B, T, H, hd/2)
    return torch.view_as_real(xc * rot).flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.n_rep = self.n_heads // self.n_kv_heads
        self.head_dim = config.head_dim
        self.wq = nn.Linear(config.dim, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, config.dim, bias=False)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, past=None, use_cache=False, layer_idx=0, start_pos=0):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        present = None
        if isinstance(past, KVCache):
            k, v = past.update(layer_idx, k, v, start_pos)  # views into preallocated buffers
            present = past
        else:
            if past is not None:  # MiniMind-style tuple cache: concatenate
                k = torch.cat([past[0], k], dim=1)
                v = torch.cat([past[1], v], dim=1)
            if use_cache:
                present = (k, v)
        S = k.shape[1]

        q = q.transpose(1, 2)                                              # (B, H, T, hd)
        k = k.transpose(1, 2).repeat_interleave(self.n_rep, dim=1)         # (B, H, S, hd)
        v = v.transpose(1, 2).repeat_interleave(self.n_rep, dim=1)
        dropout_p = self.dropout if self.training else 0.0
        if T == 1:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # one new token sees everything
        elif S == T:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:  # a chunk appended after a cached prefix: causal with an offset
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(B, T, -1)                        # (B, T, dim)
        return self.resid_dropout(self.wo(out)), present


class FeedForward(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class MoEGate(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.top_k = config.num_experts_per_tok
        self.n_experts = config.n_routed_experts
        self.weight = nn.Parameter(torch.empty(self.n_experts, config.dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x):
        B, T, D = x.shape
        scores = F.linear(x.reshape(-1, D), self.weight).softmax(dim=-1)   # (B*T, E)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        if self.top_k > 1 and self.config.norm_topk_prob:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        aux_loss = x.new_zeros(())
        alpha = self.config.aux_loss_alpha
        if self.training and alpha > 0.0:
            idx = topk_idx.view(B, -1)
            if self.config.seq_aux:
                # Per-sequence balance: expert load (normalised to 1 = uniform) times mean routing prob.
                load = torch.zeros(B, self.n_experts, device=x.device)
                load.scatter_add_(1, idx, torch.ones_like(idx, dtype=load.dtype))
                load /= T * self.top_k / self.n_experts
                aux_loss = (load * scores.view(B, T, -1).mean(dim=1)).sum(dim=1).mean() * alpha
            else:
                load = F.one_hot(idx.reshape(-1), self.n_experts).float().mean(0) * self.n_experts
                aux_loss = (scores.mean(0) * load).sum() * alpha
        return topk_idx, topk_weight, aux_loss


class MoEFeedForward(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.experts = nn.ModuleList([FeedForward(config) for _ in range(config.n_routed_experts)])
        self.gate = MoEGate(config)
        self.shared_experts = FeedForward(config) if config.n_shared_experts else None
        self.aux_loss = 0.0

    def forward(self, x):
        shape = x.shape
        topk_idx, topk_weight, self.aux_loss = self.gate(x)
        flat = x.reshape(-1, shape[-1])
        flat_idx = topk_idx.reshape(-1)                                     # (N*k,)
        token_of = torch.arange(flat.shape[0], device=x.device).repeat_interleave(self.config.num_experts_per_tok)
        weights = topk_weight.reshape(-1, 1)
        y = torch.zeros_like(flat)
        # Group the (token, expert) pairs by expert so each expert runs one batched matmul.
        order = flat_idx.argsort(stable=True)
        counts = torch.bincount(flat_idx, minlength=len(self.experts)).tolist()
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            sel = order[start:start + n]
            start += n
            tokens = token_of[sel]
            out = self.experts[e](flat[tokens]) * weights[sel].to(flat.dtype)
            y = y.index_add(0, tokens, out.to(y.dtype))
        y = y.view(shape)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y


class MiniMindBlock(nn.Module):
    def __init__(self, layer_id: int, config: LMConfig):
        super().__init__()
        # Construction order matters: it fixes which random numbers each weight gets, so a seeded
        # init equals MiniMind's seeded init.
        self.attention = Attention(config)
        self.layer_id = layer_id
        self.attention_norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.ffn_norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.feed_forward = MoEFeedForward(config) if config.use_moe else FeedForward(config)

    def forward(self, x, cos, sin, past=None, use_cache=False, start_pos=0):
        h, present = self.attention(self.attention_norm(x), cos, sin, past, use_cache, self.layer_id, start_pos)
        h = x + h
        return h + self.feed_forward(self.ffn_norm(h)), present


class MiniMindLM(nn.Module):
    def __init__(self, config: LMConfig | None = None):
        super().__init__()
        self.config = config = config or LMConfig()
        self.params = config  # MiniMind's name for it
        self.vocab_size, self.n_layers = config.vocab_size, config.n_layers
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([MiniMindBlock(i, config) for i in range(config.n_layers)])
        self.norm = RMSNorm(config.dim, eps=config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.tok_embeddings.weight = self.output.weight  # tied: one matrix serves input and output
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() counts the tied matrix once

    def forward(self, input_ids, past_key_values=None, use_cache=False, start_pos=0,
                labels=None, loss_mask=None, return_logits=True, **_):
        B, T = input_ids.shape
        if start_pos + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {start_pos + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
        cache = past_key_values if isinstance(past_key_values, KVCache) else None
        pasts = [cache] * self.n_layers if cache is not None else (past_key_values or [None] * self.n_layers)
        cos = self.rope_cos[start_pos:start_pos + T]
        sin = self.rope_sin[start_pos:start_pos + T]
        h = self.dropout(self.tok_embeddings(input_ids))
        presents = []
        for layer, past in zip(self.layers, pasts, strict=True):
            h, present = layer(h, cos, sin, past, use_cache, start_pos)
            presents.append(present)
        aux_loss = sum((b.feed_forward.aux_loss for b in self.layers if isinstance(b.feed_forward, MoEFeedForward)),
                       h.new_zeros(()))
        if cache is not None:
            cache.advance(start_pos + T)
            new_past = cache
        else:
            new_past = presents if use_cache else None

        loss = logits = None
        if labels is not None:
            loss = self.masked_loss(h, labels, loss_mask) + aux_loss
        if return_logits:
            logits = self.output(self.norm(h))
        return LMOutput(logits=logits, aux_loss=aux_loss, past_key_values=new_past, loss=loss, last_hidden_state=h)

    def masked_loss(self, h, labels, loss_mask=None):
        """Mean cross-entropy over the positions the mask keeps.

        Only those rows go through the final norm and the vocab projection: with a 6400-word vocab
        that projection is a large share of a small model's work, and SFT masks most positions out.
        """
        if loss_mask is None:
            loss_mask = torch.ones_like(labels)
        keep = loss_mask.reshape(-1).nonzero().squeeze(1)
        hidden = h.reshape(-1, h.shape[-1]).index_select(0, keep)
        logits = self.output(self.norm(hidden))
        n = loss_mask.sum()
        ce = F.cross_entropy(logits.float(), labels.reshape(-1).index_select(0, keep), reduction="sum")
        # (loss * mask).sum() / mask.sum() as in MiniMind; an all-zero mask yields 0, not NaN.
        return ce / n.clamp(min=1)

    # Generation lives in generate.py; attached here so `model.generate(...)` works as documented.
    def generate(self, input_ids, **kwargs):
        from .generate import generate
        return generate(self, input_ids, **kwargs)
