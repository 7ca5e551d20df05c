"""How much memory one training process needs: what the trainer really keeps, term by term. Torch-free, so
the dashboard and `train --dry_run` use it on any machine.

What the trainer does (loop.py): on CUDA each micro-batch is split into length-sorted forward passes of at most
the chunk budget (--chunk_tokens, 8192 padded tokens by default); each pass runs forward and backward before the
next starts, so only one pass's activations are alive at a time. The vocabulary projection and cross-entropy run
on the loss-mask rows only. On the CPU a dense model's batch is one packed row without padding. At the peak (the
start of the last layer's backward, or the loss) the process holds:

  weights and gradients   fp32, 4 + 4 bytes per parameter
  AdamW moments           fp32 exp_avg and exp_avg_sq, 8 bytes per parameter (once the first step was taken)
  DDP buckets             a second copy of the gradients (4 bytes per parameter) when several processes train
  autocast weight copies  bf16/fp16 copies of every matrix, made once per pass and kept for backward
  activations             what autograd saves for backward, per token and layer (see
                          activation_bytes_per_token_layer), for the tokens of one pass
  loss                    per loss-mask row: the final norm's inputs, and the fp32 log-softmax, its gradient
                          and the gradient of the logits alive together during the loss's backward

The activation formula was read off autograd's saved tensors (tests/unit/test_memory_plan.py measures them
with saved_tensors_hooks and compares within 15%). On a GPU the caching allocator holds somewhat more than the
peak it hands out, and the CUDA context (and NCCL's buffers) come on top; total_gb includes both, so it compares
with NVML's free memory. Worst cases are assumed where the data decides: every sample max_seq_len tokens long,
every position a loss position. An estimate for planning, not a measurement.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from model.config import LORA_RANK, LMConfig, ffn_hidden_dim  # torch-free

GiB = 1024**3
_DEFAULT = LMConfig()
VOCAB = _DEFAULT.vocab_size  # MiniMind's tokenizer

# The trainer's default chunk budget on CUDA (loop.chunk_budget takes it from here). Cards of 40 GB and more
# get twice the tokens per pass: half the passes, so half the kernel launches per step, for memory they have.
CUDA_CHUNK_TOKENS = 8192
LARGE_GPU_GIB = 40
LARGE_GPU_CHUNK_TOKENS = 16384


def default_chunk_tokens(gpu_total_gib: float | None) -> int:
    """--chunk_tokens when not given, for a GPU of this much memory (None: unknown, the smaller budget)."""
    if gpu_total_gib is not None and gpu_total_gib >= LARGE_GPU_GIB:
        return LARGE_GPU_CHUNK_TOKENS
    return CUDA_CHUNK_TOKENS
# On the CPU the loss is computed this many mask rows at a time (model.model.LOSS_ROWS); a GPU takes them at once.
CPU_LOSS_ROWS = 512

# MoE layout (model.config's defaults): routed experts, each token going to a few of them, plus shared ones.
N_ROUTED_EXPERTS = _DEFAULT.n_routed_experts
N_SHARED_EXPERTS = int(_DEFAULT.n_shared_experts)
EXPERTS_PER_TOKEN = _DEFAULT.num_experts_per_tok

FP32 = 4
LOSS_BYTES_PER_VOCAB = 3 * FP32  # log-softmax output, its gradient and the logits' gradient, fp32
CUDA_CONTEXT_GB = 0.5            # the CUDA context and kernels: outside PyTorch's allocator, seen by NVML
NCCL_GB = 0.3                    # NCCL's communication buffers per process (rough; grows with the GPU count)
ALLOCATOR_SLACK = 0.10           # reserved beyond the peak allocated: passes of different lengths fragment it
CPU_RUNTIME_GB = 0.5             # on the CPU: torch's libraries and the interpreter


def param_count(dim: int, n_layers: int, use_moe: bool = False, n_heads: int = _DEFAULT.n_heads,
                n_kv_heads: int = _DEFAULT.n_kv_heads, vocab: int = VOCAB) -> int:
    """Exact parameter count of a v1 MiniMindLM of these sizes (tied embedding counted once)."""
    return config_param_count(v1_sizes(dim, n_layers, n_heads, n_kv_heads, vocab, use_moe))


def v1_sizes(dim: int, n_layers: int, n_heads: int, n_kv_heads: int, vocab: int, use_moe: bool) -> LMConfig:
    """A v1 network of these sizes, to count and estimate with. Sizes that would not build (a dim the heads do
    not divide, as the Train form holds while the user types) are not refused here: the heads get the whole
    size they round down to, and the form's checks say what is wrong."""
    config = LMConfig(vocab_size=vocab, use_moe=use_moe)
    config.dim, config.n_layers, config.n_heads, config.n_kv_heads = dim, n_layers, n_heads, n_kv_heads
    config.head_dim, config.hidden_dim = dim // max(n_heads, 1), ffn_hidden_dim(dim)
    return config


def config_param_count(c: LMConfig) -> int:
    """Exact parameter count of the MiniMindLM `c` builds, any generation (a tied embedding counted once)."""
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    attention = 2 * c.dim * q + 2 * c.dim * kv + (2 * c.head_dim if c.qk_norm else 0)  # + minimind-3's q/k norms
    ffn = 3 * c.dim * c.hidden_dim
    if c.use_moe:  # v1: one shared expert or none; MiniMind2: n of them; minimind-3: none. A router of E x dim.
        ffn = ffn * (c.n_routed_experts + int(c.n_shared_experts)) + c.n_routed_experts * c.dim
    embeddings = c.vocab_size * c.dim * (1 if c.tie_embeddings else 2)
    return embeddings + c.n_layers * (attention + ffn + 2 * c.dim) + c.dim


def lora_param_count(c: LMConfig) -> int:
    """The parameters of MiniMind's LoRA on the network `c` builds: rank r (model/lora.py's LORA_RANK) A and B
    matrices on every square linear layer, which are the query and output projections when the heads span
    the hidden size (minimind-3 with another head_dim has none)."""
    square = 2 if c.n_heads * c.head_dim == c.dim else 0
    return c.n_layers * square * LORA_RANK[c.generation] * 2 * c.dim


def activation_bytes_per_token_layer(c: LMConfig, low_precision: bool = True, packed: bool = False) -> int:
    """Bytes autograd keeps for backward per token per transformer block of the network `c` describes.

    low_precision: under bf16/fp16 autocast (fp32 training otherwise). Under autocast the model casts each
    normed activation once for the projections that read it (model.matmul_input), and that copy is kept;
    in fp32 they read the normed tensor itself. The residual stream and the RMSNorms stay fp32 either way.
    """
    D, F = c.dim, c.hidden_dim
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    lp = 2 if low_precision else FP32
    # Each RMSNorm keeps its input and the normalised tensor (fp32) and a per-token rstd.
    norms = 2 * (2 * D + 1) * FP32
    # Attention: the input of wq/wk/wv, and SDPA's q, k and v (the grouped K/V heads, read in place by every
    # query head of the group) and output, plus its per-head log-sum-exp. wo reads the output in place.
    attention = D * lp + (2 * q + 2 * kv) * lp + c.n_heads * FP32
    if c.qk_norm:  # minimind-3: q and k before their RMSNorm (fp32) and the normed copies
        attention += (q + kv) * (FP32 + lp)
    # SwiGLU: w1's and w3's input, w1's output (silu's input), silu's output and w3's output (the product's
    # inputs), and the product (w2's input).
    def swiglu(input_bytes: int) -> int:
        return input_bytes + 4 * F * lp

    if not c.use_moe:
        ffn = swiglu(D * lp)
    else:
        k, shared, experts = c.num_experts_per_tok, int(c.n_shared_experts), c.n_routed_experts
        norm_out = 0 if low_precision else D * FP32  # fp32: the router and the shared expert read it in place
        router = (D * lp if low_precision else 0) + experts * FP32
        shared_ffn = shared * swiglu(D * lp if low_precision else 0)
        # Each routed (token, expert) pair: the gathered rows (their cast under autocast), the expert, its
        # output (kept by the routing-weight multiply) and the weighted fp32 output (kept by index_add).
        routed = k * (swiglu(D * lp) + D * lp + D * FP32)
        ffn = norm_out + router + shared_ffn + routed
    if packed:
        # Per-sample attention: the outputs are concatenated (one more copy, wo's input). (RoPE's rotation is
        # per token too, positions restarting per sample, but one table serves every layer.)
        attention += q * lp
    return norms + attention + ffn


@dataclass(frozen=True)
class MemoryPlan:
    device: str               # "cuda" or "cpu"
    dtype: str                # what the matmuls compute in: bfloat16 / float16 under autocast, else float32
    world_size: int
    params: int
    batch_size: int
    max_seq_len: int
    chunk_tokens: int | None  # the pass budget in effect; None: one pass per micro-batch (packed or -1)
    passes_per_micro_batch: int  # when every sample is max_seq_len tokens long
    tokens_per_pass: int      # the most tokens (with padding) one forward pass computes
    loss_rows_per_pass: int   # loss-mask rows projected onto the vocabulary at once (worst case: all)
    weights_gb: float         # fp32 weights and gradients (LoRA: gradients of the adapters only)
    optimizer_gb: float       # AdamW moments of what trains
    frozen_gb: float          # DPO's reference model, distillation's teacher: weights only, no gradients
    ddp_gb: float             # DDP's gradient buckets
    casts_gb: float           # autocast's low-precision weight copies
    activations_gb: float
    loss_gb: float
    allocated_gb: float       # the peak PyTorch hands out (torch.cuda.max_memory_allocated)
    overhead_gb: float        # allocator slack, CUDA context, NCCL (GPU); the runtime (CPU)
    total_gb: float           # per process; on a GPU what NVML would show at the peak

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def pass_shape(batch_size: int, seq_len: int, budget: int | None) -> tuple[int, int]:
    """(passes per micro-batch with full-length samples, most padded tokens in one pass) for a chunk budget
    (dataset.batching.plan_chunks): None = the whole batch in one pass, 0 = one sample per pass. Shorter
    samples pack more rows into a pass, never more than the budget's tokens."""
    if budget is None:
        return 1, batch_size * seq_len
    per_pass = max(1, budget // seq_len)
    return math.ceil(batch_size / per_pass), min(batch_size * seq_len, max(budget, seq_len))


def plan_memory(dim: int, n_layers: int, batch_size: int, max_seq_len: int, *, n_heads: int = 8,
                n_kv_heads: int = 2, use_moe: bool = False, vocab: int = VOCAB, dtype: str = "bfloat16",
                device: str = "cuda", chunk_tokens: int | None = None, world_size: int = 1,
                gpu_total_gb: float | None = None, config: LMConfig | None = None, mode: str = "sft",
                teacher: LMConfig | None = None) -> MemoryPlan:
    """The peak memory of one training process, the way loop.py trains (arguments as its flags;
    gpu_total_gb, the card's memory in GiB, decides the default chunk budget as the trainer does).
    config: the network of another generation (its sizes win over dim ... vocab); default a v1 one.
    mode: lora trains the adapters only; dpo holds a reference copy of the weights and runs each pair's two
    sides in one padded pass (2 x batch_size rows); distill holds `teacher` (bf16 on a GPU) and its logits."""
    if config is None:
        config = v1_sizes(dim, n_layers, n_heads, n_kv_heads, vocab, use_moe)
    dim, n_layers, use_moe, vocab = config.dim, config.n_layers, config.use_moe, config.vocab_size
    cuda = device.startswith("cuda")
    low_precision = cuda and dtype in ("bfloat16", "float16")  # the CPU always trains in fp32
    packed = not cuda and chunk_tokens is None and not use_moe  # loop.use_packing
    if mode == "dpo":  # the chosen and the rejected side of each pair, in one pass (loop.make_collator)
        batch_size, chunk_tokens, packed = 2 * batch_size, -1, False
    elif mode == "distill":
        packed = False
    if packed:
        budget: int | None = None
    else:
        budget = chunk_tokens if chunk_tokens is not None else (default_chunk_tokens(gpu_total_gb) if cuda else 0)
        budget = None if budget < 0 else budget
    passes, tokens = pass_shape(batch_size, max_seq_len, budget)
    rows = tokens  # every position may be a loss position (pretraining: all real tokens are)

    P = config_param_count(config)
    norm_weights = n_layers * (2 * dim + (2 * config.head_dim if config.qk_norm else 0)) + dim
    matrices = P - norm_weights  # everything but the RMSNorm weights goes through a matmul
    trained = lora_param_count(config) if mode == "lora" else P
    weights = P * FP32 + trained * FP32
    optimizer = trained * 2 * FP32
    ddp = trained * FP32 if world_size > 1 else 0
    frozen = 0
    if mode == "dpo":
        frozen = P * FP32
    elif mode == "distill" and teacher is not None:
        frozen = config_param_count(teacher) * (2 if low_precision else FP32)
    casts = matrices * 2 if low_precision else 0
    per_token = activation_bytes_per_token_layer(config, low_precision, packed)
    activations = tokens * (n_layers * per_token + 8)  # + the token ids the embedding keeps
    lp = 2 if low_precision else FP32
    # Final norm on the mask rows (input and normalised fp32; the projection's input), then the loss.
    head_per_row = 2 * dim * FP32 + dim * lp
    if not cuda:  # a slice of rows at a time: each slice's log-softmax stays for backward, one slice peaks
        loss = rows * (head_per_row + vocab * FP32) + min(rows, CPU_LOSS_ROWS) * 2 * vocab * FP32
    else:
        loss = rows * (head_per_row + vocab * LOSS_BYTES_PER_VOCAB)
    if mode in ("dpo", "distill"):  # the frozen model's logits at the same rows, fp32, for the loss
        loss += rows * (teacher.vocab_size if mode == "distill" and teacher is not None else vocab) * FP32
    # The optimizer step (after backward, activations gone) never needs more than a pass does.
    allocated = weights + optimizer + ddp + casts + activations + loss + frozen
    if cuda:
        overhead = ALLOCATOR_SLACK * (activations + loss) / GiB + CUDA_CONTEXT_GB + (NCCL_GB if world_size > 1 else 0)
    else:
        overhead = CPU_RUNTIME_GB
    return MemoryPlan(
        device="cuda" if cuda else "cpu", dtype=dtype if low_precision else "float32", world_size=world_size,
        params=P, batch_size=batch_size, max_seq_len=max_seq_len, chunk_tokens=budget,
        passes_per_micro_batch=passes, tokens_per_pass=tokens, loss_rows_per_pass=rows,
        weights_gb=weights / GiB, optimizer_gb=optimizer / GiB, frozen_gb=frozen / GiB, ddp_gb=ddp / GiB,
        casts_gb=casts / GiB,
        activations_gb=activations / GiB, loss_gb=loss / GiB, allocated_gb=allocated / GiB, overhead_gb=overhead,
        total_gb=allocated / GiB + overhead)


def plan_for_settings(settings: dict, vocab: int, world_size: int = 1,
                      gpu_total_gb: float | None = None) -> MemoryPlan:
    """The plan for the trainer's resolved settings (train.args.resolve) and a device."""
    from .args import model_config  # torch-free

    return plan_memory(settings["dim"], settings["n_layers"], settings["batch_size"], settings["max_seq_len"],
                       dtype=settings["dtype"], device=settings.get("device") or "cpu",
                       chunk_tokens=settings.get("chunk_tokens"), world_size=world_size,
                       gpu_total_gb=gpu_total_gb, config=model_config(settings, vocab), mode=settings["mode"],
                       teacher=teacher_config(settings, vocab))


def teacher_config(settings: dict, vocab: int) -> LMConfig | None:
    """Distillation's teacher network as the settings size it (--teacher_dim etc., the default teacher's
    shape); None for the other modes."""
    from .args import model_config  # torch-free

    if settings["mode"] != "distill" or not settings.get("teacher_dim"):
        return None
    return model_config({**settings, "dim": settings["teacher_dim"], "n_layers": settings["teacher_n_layers"],
                         "use_moe": settings.get("teacher_use_moe")}, vocab)
