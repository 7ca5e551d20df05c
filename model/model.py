"""MiniMindLM: a Llama-style decoder whose state_dict matches MiniMind's key for key, for every generation.

RMSNorm -> grouped-query attention with RoPE -> RMSNorm -> SwiGLU (or MoE) FFN, tied embeddings.

The generations (config.py) differ in a few places, each an LMConfig field: the RoPE layout (rope_layout),
RMSNorm on q and k (qk_norm), head_dim, the FFN width, norm eps and cast order, the MoE router (moe_router),
the init (init_std) and the checkpoint's key names (generation; key_names.py, mapped by state-dict hooks).

One forward serves every use, so the block's arithmetic is written once: training on padded rows or on a
packed row (samples back to back, each attending to itself only, RoPE positions restarting per sample),
prefilling a prompt, and decoding one token against a preallocated cache (generate.py).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from . import key_names
from .config import LMConfig
from .generate import generate
from .kv_cache import ConcatCache, KVCache


# ==== MiniMind compatibility ===========================================================================
# What code written against MiniMind uses and this project does not: indexing the output like a dict,
# `model.params`, `model.generate(...)`, the list of (k, v) pairs returned for `use_cache=True`
# (kv_cache.ConcatCache), and the config fields the network ignores (config.py, its own marked block).
class MiniMindOutputNames:
    def __getitem__(self, key: str):  # out["logits"]
        return getattr(self, key)


class MiniMindModelNames(nn.Module):
    config: LMConfig

    @property
    def params(self) -> LMConfig:  # MiniMind's name for the config
        return self.config

    def generate(self, input_ids, **kwargs):  # generate.py's engine (see there for what differs from MiniMind)
        return generate(self, input_ids, **kwargs)
# =======================================================================================================


@dataclass
class LMOutput(MiniMindOutputNames):
    logits: torch.Tensor | None
    aux_loss: torch.Tensor                         # MoE balance loss (0 for dense models or in eval)
    past_key_values: list | KVCache | None = None
    loss: torch.Tensor | None = None               # mean CE over loss-mask tokens (+ aux_loss), when labels given
    last_hidden_state: torch.Tensor | None = None  # before the final norm


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, cast_last: bool = False):
        super().__init__()
        self.eps = eps
        self.cast_last = cast_last  # minimind-3 multiplies by the weight before casting back (config.py)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        if x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
            # One fused kernel instead of six: the same fp32 arithmetic, and it matters when decoding
            # one token at a time, where per-operation overhead dominates.
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # Normalise in fp32 even under autocast, as MiniMind does.
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        if self.cast_last:
            return (self.weight * normed).type_as(x)
        return self.weight * normed.type_as(x)


def rope_frequencies(head_dim: int, end: int, theta: float, scaling: dict | None = None) -> tuple[torch.Tensor, float]:
    """RoPE's angle per position step for each pair of dims (head_dim/2,), and the factor on cos and sin.

    With YaRN (`scaling`, MiniMind2's and minimind-3's `inference_rope_scaling`; used only when the table
    reaches past the trained length): the slow-turning frequencies, which never completed a turn within
    the trained positions, are divided by `factor`; the fast ones are kept; a linear ramp blends the two.
    MiniMind's arithmetic exactly (its precompute_freqs_cis)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    if scaling is None:
        return freqs, 1.0
    trained, factor = scaling.get("original_max_position_embeddings", 2048), scaling.get("factor", 16)
    beta_fast, beta_slow = scaling.get("beta_fast", 32.0), scaling.get("beta_slow", 1.0)
    attention_factor = scaling.get("attention_factor", 1.0)
    if end / trained > 1.0:
        def pair_of(turns: float) -> float:  # the pair whose wavelength fits `turns` times in `trained`
            return (head_dim * math.log(trained / (turns * 2 * math.pi))) / (2 * math.log(theta))

        low = max(math.floor(pair_of(beta_fast)), 0)
        high = min(math.ceil(pair_of(beta_slow)), head_dim // 2 - 1)
        ramp = torch.clamp((torch.arange(head_dim // 2).float() - low) / max(high - low, 0.001), 0, 1)
        freqs = freqs * (1 - ramp + ramp / factor)
    return freqs, attention_factor


def rope_table(head_dim: int, end: int, theta: float, scaling: dict | None = None) -> torch.Tensor:
    """RoPE's rotation e^(i angle) for each position and pair of dims, as (cos, sin): (end, head_dim/2, 2).

    Kept real, and viewed as complex numbers where used: `model.to(dtype)` would turn a complex buffer
    into a real one, silently dropping the sines."""
    freqs, attention_factor = rope_frequencies(head_dim, end, theta, scaling)
    angles = torch.outer(torch.arange(end).float(), freqs)                # (end, head_dim/2)
    table = torch.stack([angles.cos(), angles.sin()], dim=-1)
    return table if attention_factor == 1.0 else table * attention_factor


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of dims by its position's angle. x: (B, T, H, hd); rot: complex (T, hd/2).

    MiniMind's layout and arithmetic: the pairs are interleaved dims (x0, x1), (x2, x3)..., each taken
    as a complex number x_even + i x_odd and multiplied by e^(i angle): few kernels, the same rounding."""
    xc = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))      # (B, T, H, hd/2)
    return torch.view_as_real(xc * rot[:, None]).flatten(-2).type_as(x)


def apply_rope_half(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """The same rotation with MiniMind2's and minimind-3's layout: dim i pairs with dim i + hd/2
    (rotate_half). x: (B, T, H, hd); rot: (2, T, hd), each position's cos then sin, the hd/2 angles
    written twice (rope_rows)."""
    cos, sin = rot[0][:, None], rot[1][:, None]                           # (T, 1, hd)
    xf = x.float()
    first, second = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat([-second, first], dim=-1) * sin).type_as(x)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout, not even called where it does nothing (eval, p = 0): decoding pays for every call."""
    return F.dropout(x, p) if training and p > 0 else x


def matmul_input(x: torch.Tensor) -> torch.Tensor:
    """x in the dtype the projections will use. Under autocast every projection casts its input itself;
    the normed activations feed two or three of them, so one cast here saves the others (the same values;
    their gradients then add up in the autocast dtype, as in a model held in bf16)."""
    device = x.device.type
    return x.to(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else x


class Linears(Protocol):
    """Who multiplies by a module's weight matrices: the module's own nn.Linear layers (OWN_WEIGHTS), or
    for one-token decoding int8.py's StackedWeights or Int8Weights (fewer matmuls, or int8 copies)."""

    def linear(self, module: nn.Linear, x: torch.Tensor) -> torch.Tensor: ...

    def stacked(self, module: Attention | FeedForward, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The projections named by module.SHARED_INPUT, all applied to x."""
        ...


class OwnWeights:
    def linear(self, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return module(x)

    def stacked(self, module: Attention | FeedForward, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(module, name)(x) for name in module.SHARED_INPUT)


OWN_WEIGHTS = OwnWeights()


@dataclass
class ForwardContext:
    """What every layer shares in one forward."""
    rot: torch.Tensor                                # RoPE rotation of each position: complex (T, head_dim/2),
                                                     # or (2, T, head_dim) cos/sin for rope_layout "half"
    linears: Linears = OWN_WEIGHTS
    cache: KVCache | ConcatCache | None = None       # earlier positions' keys/values; this forward's are added
    start_pos: int = 0                               # the first token's position (where the cache writes)
    spans: Sequence[tuple[int, int]] | None = None   # a packed row: (start, end) of each sample
    bias: torch.Tensor | None = None                 # (B, 1, T, S) added to the attention scores: causal and
                                                     # padding mask, when an attention_mask is given


class Attention(nn.Module):
    SHARED_INPUT: ClassVar[tuple[str, ...]] = ("wq", "wk", "wv")  # projections of one input (int8.py stacks them)

    def __init__(self, config: LMConfig, layer_id: int):
        super().__init__()
        self.layer_id = layer_id  # its slot in a KV cache
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.n_rep = self.n_heads // self.n_kv_heads
        assert config.head_dim is not None  # LMConfig.__post_init__ derives it when not given
        self.head_dim: int = config.head_dim
        self.wq = nn.Linear(config.dim, self.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(self.n_heads * self.head_dim, config.dim, bias=False)
        self.dropout = config.dropout  # on the attention weights and on the output
        # minimind-3 normalises each head's q and k before RoPE (registered after wo: its key order).
        self.q_norm = RMSNorm(self.head_dim, config.norm_eps, config.norm_cast_last) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.norm_eps, config.norm_cast_last) if config.qk_norm else None
        self.rope = apply_rope_half if config.rope_layout == "half" else apply_rope

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = ctx.linears.stacked(self, matmul_input(x))
        q = q.view(B, T, self.n_heads, self.head_dim)                                # (B, T, H, hd)
        k = k.view(B, T, self.n_kv_heads, self.head_dim)                             # (B, T, n_kv, hd)
        v = v.view(B, T, self.n_kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self.rope(q, ctx.rot), self.rope(k, ctx.rot)
        if ctx.cache is not None:  # attend to the earlier positions too
            k, v = ctx.cache.update(self.layer_id, k, v, ctx.start_pos)              # (B, S, n_kv, hd)
        if ctx.spans is None:
            out = self.attend(q, k, v, ctx.bias)
        else:  # a packed row: each sample attends causally to itself only
            out = torch.cat([self.attend(q[:, s:e], k[:, s:e], v[:, s:e]) for s, e in ctx.spans], dim=1)
        return dropout(ctx.linears.linear(self.wo, out.flatten(2)), self.dropout, self.training)  # (B, T, dim)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """Causal attention of T queries (B, T, H, hd) over S >= T keys and values (B, S, n_kv, hd), the last
        T of them at the queries' own positions; (B, T, H, hd) out. Each group of n_rep query heads reads
        its K/V head in place (enable_gqa) instead of a copy repeated n_rep times. `bias` (B, 1, T, S), when
        given, is added to the scores and must hold the causal mask itself (attention_bias)."""
        T, S = q.shape[1], k.shape[1]
        mask = None if bias is None else bias.to(q.dtype)
        if bias is None and 1 < T < S:  # a chunk appended after a cached prefix: causal with an offset
            mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=bias is None and T == S and T > 1,  # one new token sees everything before it: no mask
            enable_gqa=self.n_rep > 1)                                               # (B, H, T, hd)
        return out.transpose(1, 2)


class FeedForward(nn.Module):
    SHARED_INPUT: ClassVar[tuple[str, ...]] = ("w1", "w3")

    def __init__(self, config: LMConfig):
        super().__init__()
        assert config.hidden_dim is not None  # LMConfig.__post_init__ derives it when not given
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, linears: Linears = OWN_WEIGHTS) -> torch.Tensor:
        gate, up = linears.stacked(self, matmul_input(x))                           # SwiGLU
        return dropout(linears.linear(self.w2, F.silu(gate) * up), self.dropout, self.training)


class MoEGate(nn.Module):
    """The router: a softmax over experts per token, its top-k experts and their weights, and the balance loss.

    Its weight is drawn like an nn.Linear's (kaiming uniform), which is what minimind-3's nn.Linear gate is:
    the same key (gate.weight), shape and random numbers."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.top_k = config.num_experts_per_tok
        self.n_experts = config.n_routed_experts
        self.switch = config.moe_router == "switch"
        self.weight = nn.Parameter(torch.empty(self.n_experts, config.dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x):
        B, T, D = x.shape
        scores = F.linear(x.reshape(-1, D), self.weight).softmax(dim=-1)   # (B*T, E)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        if self.config.norm_topk_prob and (self.top_k > 1 or self.switch):  # top-1 "switch": weight 1.0
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        aux_loss = x.new_zeros(())
        alpha = self.config.aux_loss_alpha
        if self.training and alpha > 0.0:
            idx = topk_idx.view(B, -1)
            if self.switch:
                # Each k-th choice's share of tokens per expert, times the mean routing prob, times E.
                load = F.one_hot(topk_idx, self.n_experts).float().mean(0)                # (k, E)
                aux_loss = (load * scores.mean(0)).sum() * self.n_experts * alpha
            elif self.config.seq_aux:
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
    shared_experts: FeedForward | nn.ModuleList | None

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        # Registration order is each generation's key order and order of random draws: minimind-3 creates
        # its gate first; v1 and MiniMind2 after the experts.
        if config.moe_router == "switch":
            self.gate = MoEGate(config)
        self.experts = nn.ModuleList([FeedForward(config) for _ in range(config.n_routed_experts)])
        if config.moe_router != "switch":
            self.gate = MoEGate(config)
        if config.generation == "v1":  # v1: one shared expert (shared_experts.w1...) or none
            self.shared_experts = FeedForward(config) if config.n_shared_experts else None
        elif config.n_shared_experts:  # MiniMind2: a list of them (shared_experts.0.gate_proj...)
            self.shared_experts = nn.ModuleList([FeedForward(config) for _ in range(int(config.n_shared_experts))])
        else:
            self.shared_experts = None
        self.aux_loss: torch.Tensor | float = 0.0

    def forward(self, x: torch.Tensor, linears: Linears = OWN_WEIGHTS) -> torch.Tensor:
        # The experts always use their own weights (int8.py's copies are for one-token decoding of dense models).
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
        if isinstance(self.shared_experts, FeedForward):
            y = y + self.shared_experts(x)
        elif self.shared_experts is not None:
            for expert in self.shared_experts:
                y = y + expert(x)
        return y


class MiniMindBlock(nn.Module):
    def __init__(self, layer_id: int, config: LMConfig):
        super().__init__()
        # Construction order matters: it fixes which random numbers each weight gets, so a seeded
        # init equals MiniMind's seeded init.
        self.attention = Attention(config, layer_id)
        self.layer_id = layer_id
        self.attention_norm = RMSNorm(config.dim, config.norm_eps, config.norm_cast_last)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps, config.norm_cast_last)
        self.feed_forward = MoEFeedForward(config) if config.use_moe else FeedForward(config)

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), ctx)
        return h + self.feed_forward(self.ffn_norm(h), ctx.linears)


LOSS_ROWS = 512  # loss-mask rows per slice on the CPU: (512, vocab) logits stay in the CPU cache


class MiniMindLM(MiniMindModelNames):
    rope: torch.Tensor  # (max_seq_len, head_dim/2, 2), see rope_table

    def __init__(self, config: LMConfig | None = None):
        super().__init__()
        self.config = config = config or LMConfig()
        self.vocab_size, self.n_layers = config.vocab_size, config.n_layers
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.dropout = config.dropout
        self.layers = nn.ModuleList([MiniMindBlock(i, config) for i in range(config.n_layers)])
        self.norm = RMSNorm(config.dim, config.norm_eps, config.norm_cast_last)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.tok_embeddings.weight = self.output.weight  # tied: one matrix serves input and output
        assert config.head_dim is not None  # LMConfig.__post_init__ derives it when not given
        self.register_buffer("rope", rope_table(config.head_dim, config.max_seq_len, config.rope_theta,
                                                config.rope_scaling), persistent=False)
        if (std := config.init_std) is not None:
            self.apply(lambda module: init_normal(module, std))
        if config.generation != "v1":  # MiniMind2's and minimind-3's key names in and out (key_names.py)
            self.register_state_dict_post_hook(save_with_hf_names)
            self.register_load_state_dict_pre_hook(load_with_hf_names)

    @property
    def generation(self) -> str:
        """Which MiniMind this is: "v1", "gen2" (MiniMind2) or "gen3" (minimind-3); see model/config.py."""
        return self.config.generation

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() counts the tied matrix once

    def forward(self, input_ids: torch.Tensor, past_key_values: list | KVCache | None = None,
                use_cache: bool = False, start_pos: int = 0, logits_to_keep: int = 0,
                labels: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None,
                loss_rows: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                spans: Sequence[tuple[int, int]] | None = None, return_logits: bool = True,
                linears: Linears | None = None, attention_mask: torch.Tensor | None = None,
                logits_rows: torch.Tensor | None = None) -> LMOutput:
        """input_ids (B, T) -> LMOutput.

        Cache: a KVCache (written in place at start_pos, returned as past_key_values), or MiniMind's list
        of (k, v) per layer (`use_cache=True` returns the extended list; start_pos defaults to its length).
        Logits for the last `logits_to_keep` positions (0: all), none with return_logits=False.
        Loss (with labels): mean cross-entropy over the positions in loss_mask (B, T), or over loss_rows,
        their flat indices into the B*T positions, as the collators compute them (no host sync); labels
        then are each position's target (the next token). Labels alone follow the generation's own model:
        v1 (whose model takes none) the same, every position whose label is not -100; MiniMind2 and
        minimind-3 shift them as their forward does (position t predicts labels[t + 1]; -100 is ignored).
        attention_mask (B, start_pos + T), 1 for tokens and 0 for padding (MiniMind2's and minimind-3's
        left-padded batches): padded keys get -1e9 added to their scores, as in their code.
        A packed row (B = 1): positions (T,) within each sample and spans [(start, end)] of the samples.
        linears: who applies the weight matrices (see Linears; int8.py's, for one-token decoding).
        logits_rows: flat indices into the B*T positions: logits (R, vocab) for those positions only (DPO and
        distillation need the whole distribution at the trained positions, and nowhere else)."""
        T = input_ids.shape[1]
        cache: KVCache | ConcatCache | None = None
        if isinstance(past_key_values, KVCache):
            cache = past_key_values
        elif use_cache or past_key_values is not None:  # MiniMind's list of (k, v) pairs
            cache = ConcatCache(past_key_values, self.n_layers)
            start_pos = start_pos or cache.cached_length()  # MiniMind2 passes no position: the cache says it
        bias = None
        if attention_mask is not None:
            if spans is not None:
                raise ValueError("a packed row separates its samples by spans, not by an attention_mask")
            bias = attention_bias(attention_mask, T, start_pos)
        ctx = ForwardContext(self.rotation(T, start_pos, positions, spans, cache), linears or OWN_WEIGHTS,
                             cache, start_pos, spans, bias)
        h = dropout(self.tok_embeddings(input_ids), self.dropout, self.training)
        for layer in self.layers:
            h = layer(h, ctx)
        aux_loss = h.new_zeros(())
        for block in self.layers if self.config.use_moe else ():
            if isinstance(block.feed_forward, MoEFeedForward):
                aux_loss = aux_loss + block.feed_forward.aux_loss
        if cache is not None:
            cache.advance(start_pos + T)
        loss = logits = None
        if labels is not None:
            hidden, targets = h, labels
            if loss_mask is None and loss_rows is None and self.generation != "v1":
                hidden, targets = h[:, :-1], labels[:, 1:]  # MiniMind2's / minimind-3's labels: unshifted
            loss = self.masked_loss(hidden, targets, self.rows_of(targets, loss_mask, loss_rows)) + aux_loss
        if logits_rows is not None:
            logits = ctx.linears.linear(self.output, self.norm(h.flatten(0, 1).index_select(0, logits_rows)))
        elif return_logits:
            logits = ctx.linears.linear(self.output, self.norm(h[:, -logits_to_keep:]))  # -0: all positions
        past = (cache.pairs if use_cache else None) if isinstance(cache, ConcatCache) else cache
        return LMOutput(logits=logits, aux_loss=aux_loss, past_key_values=past, loss=loss, last_hidden_state=h)

    def rotation(self, T: int, start_pos: int, positions: torch.Tensor | None,
                 spans: Sequence[tuple[int, int]] | None, cache: KVCache | ConcatCache | None) -> torch.Tensor:
        """The RoPE rotation of each of the T positions: complex (T, head_dim/2), or for the "half" layout
        (2, T, head_dim), cos and sin (see rope_rows)."""
        if (positions is None) != (spans is None):
            raise ValueError("a packed row needs both positions and spans")
        if positions is not None:  # a packed row: positions restart at 0 for each sample
            if self.config.use_moe or cache is not None:
                raise ValueError("packed rows are for training dense models (MoE's balance loss is defined "
                                 "per padded sequence)")
            table = self.rope[positions]
        else:
            if start_pos + T > self.config.max_seq_len:
                raise ValueError(f"sequence of {start_pos + T} tokens exceeds max_seq_len {self.config.max_seq_len}")
            table = self.rope[start_pos:start_pos + T]
        if self.config.rope_layout == "half":
            return rope_rows(table.float())
        return torch.view_as_complex(table.float())  # .float(): a no-op unless the model was cast

    @staticmethod
    def rows_of(labels: torch.Tensor, loss_mask: torch.Tensor | None, loss_rows: torch.Tensor | None) -> torch.Tensor:
        """Flat indices of the positions the loss counts."""
        if loss_rows is not None:
            if loss_mask is not None:
                raise ValueError("give loss_mask or loss_rows, not both")
            return loss_rows
        if loss_mask is None:  # every position with a label (-100: none, as in MiniMind2's data)
            return (labels.reshape(-1) != -100).nonzero().squeeze(1)
        # MiniMind's way in: a mask. Finding its rows waits for the device (the trainer's collators
        # compute them on the host instead).
        return loss_mask.reshape(-1).nonzero().squeeze(1)

    def masked_loss(self, h: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the positions `rows` (flat indices into h's B*T positions), as MiniMind's
        (loss * mask).sum() / mask.sum(); no rows give 0, not NaN.

        Only those rows go through the final norm and the vocab projection: with a 6400-word vocab that
        projection is a large share of a small model's work, and SFT masks most positions out. On the CPU
        the rows go LOSS_ROWS at a time: one (rows, vocab) softmax over a whole batch is memory-bound,
        small slices are not. A GPU takes them in one piece (fewer kernels). Same sum, same mean."""
        hidden = h.reshape(-1, h.shape[-1])
        targets = labels.reshape(-1)
        n = len(rows)
        size = LOSS_ROWS if h.device.type == "cpu" else max(n, 1)
        # At least one slice: an empty one still gives a loss of 0 that backward() accepts.
        ce = [F.cross_entropy(self.output(self.norm(hidden.index_select(0, part))).float(),
                              targets.index_select(0, part), reduction="sum")
              for part in (rows[start:start + size] for start in range(0, max(n, 1), size))]
        return sum(ce[1:], ce[0]) / max(n, 1)


def rope_rows(table: torch.Tensor) -> torch.Tensor:
    """rope_table rows (T, hd/2, 2) -> (2, T, hd): cos and sin with each angle written twice, for dims i and
    i + hd/2 (apply_rope_half; MiniMind2's freqs_cos / freqs_sin)."""
    cos, sin = table[..., 0], table[..., 1]
    return torch.stack([torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)])


def attention_bias(attention_mask: torch.Tensor, T: int, start_pos: int) -> torch.Tensor:
    """(B, 1, T, S) scores bias of T queries at start_pos.. over S = start_pos + T keys: -inf after each
    query's own position, and -1e9 on every key whose attention_mask (B, S) is 0 (MiniMind2's and
    minimind-3's additive (1 - mask) * -1e9: a padded query, which sees only padding, still gets finite
    scores and no NaN)."""
    S = start_pos + T
    if attention_mask.shape[1] != S:
        raise ValueError(f"attention_mask covers {attention_mask.shape[1]} positions; this forward has {S} "
                         f"(cached and new)")
    device = attention_mask.device
    causal = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)
    bias = torch.zeros(T, S, device=device).masked_fill(~causal, float("-inf"))
    return bias + (1.0 - attention_mask[:, None, None, :].float()) * -1e9                 # (B, 1, T, S)


def init_normal(module: nn.Module, std: float) -> None:
    """minimind-3's initialisation (transformers' post_init): N(0, std) for every Linear, router and
    Embedding, in MiniMindLM.apply's order (children first), which is the order transformers walks."""
    if isinstance(module, (nn.Linear, MoEGate, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)


def save_with_hf_names(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict() post-hook of a MiniMind2 / minimind-3 model: its keys renamed as that generation names
    them, in place and in order (torch.save of it is what upstream's trainer writes, in fp32)."""
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(prefix):
            key = prefix + key_names.hf_key(key[len(prefix):])
        state_dict[key] = value


def load_with_hf_names(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                       missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
    """load_state_dict() pre-hook of a MiniMind2 / minimind-3 model: their key names -> the modules' names
    (v1 names are accepted too)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        renamed = prefix + key_names.v1_key(key[len(prefix):])
        if renamed != key:
            state_dict[renamed] = state_dict.pop(key)
