"""Token generation with a preallocated KV cache: prefill the prompt once, then one token per step.

Knows nothing about text: it takes token ids and yields token ids (streaming.py turns them into text).

Differences from MiniMind's own `generate`, on purpose:
- `max_new_tokens` counts new tokens (MiniMind counted the total length, prompt included).
- The cache is written in place (model/kv_cache.py) instead of re-concatenated at every token, and the
  repetition penalty keeps a boolean "seen" row per sequence instead of rebuilding a Python set.
- The repetition penalty is sign-aware (as in CTRL and Hugging Face): a seen token's positive logit is
  divided by the penalty and a negative one multiplied, so a penalty > 1 always makes it less likely.
  MiniMind divides every seen logit, which makes negative ones *more* likely.
- temperature 0 means greedy decoding.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch

from . import int8 as int8_weights
from .config import LMConfig
from .int8 import Int8Weights, StackedWeights
from .kv_cache import KVCache


class GenerationError(ValueError):
    user_facing = True


class StopFlag(Protocol):
    """Anything with `is_set()`, such as threading.Event: checked between tokens to cancel generation."""

    def is_set(self) -> bool: ...


class LanguageModel(Protocol):
    """What generation needs of a model: MiniMindLM's forward over a KVCache. Described here, not
    imported: model.py imports this module to offer MiniMind's `model.generate(...)`."""

    config: LMConfig
    training: bool

    def __call__(self, input_ids: torch.Tensor, *, past_key_values: KVCache, start_pos: int = 0,
                 logits_to_keep: int = 0, linears: Any = None) -> Any: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def modules(self) -> Iterator[torch.nn.Module]: ...


def generate(model: LanguageModel, input_ids, max_new_tokens: int = 512, temperature: float = 0.75,
             top_p: float = 0.9, top_k: int = 0, repetition_penalty: float = 1.0, eos_token_id: int | None = 2,
             stream: bool = False, seed: int | None = None, stop: StopFlag | None = None, pad_token_id: int = 0,
             int8: bool = False):
    """Continue `input_ids` (a LongTensor [B, T] or [T], or a list of ints) by up to `max_new_tokens` tokens.

    stream=False: returns a LongTensor [B, T + n] (prompt then the n new tokens; rows that met eos earlier
    are filled with `pad_token_id`). stream=True: returns an iterator yielding each new token id as it is
    produced (an int for one sequence, a list of ints per step for a batch). Generation ends on eos (for
    every row), after `max_new_tokens`, at the model's max_seq_len, or when `stop.is_set()`.
    `seed` makes sampling reproducible without touching the global RNG. `int8=True` (CPU only) decodes
    with int8 weight copies: several times faster per token, slightly different numbers (see int8.py).
    """
    ids = _as_batch(input_ids, _device_of(model))
    quantized: Int8Weights | StackedWeights | None = None
    if ids.device.type == "cpu" and not model.training:
        quantized = StackedWeights.for_model(model)
    if int8:
        if not int8_weights.available(ids.device):
            raise GenerationError(f"int8 decoding needs a CPU model and PyTorch's int8 kernel; this model is "
                                  f"on {ids.device}. Leave int8 off.")
        quantized = Int8Weights.for_model(model)
    tokens = _token_stream(model, ids, max_new_tokens, temperature, top_p, top_k, repetition_penalty,
                           eos_token_id, seed, stop, pad_token_id, quantized)
    if stream:
        batch = ids.shape[0]
        return (int(t[0]) if batch == 1 else t.tolist() for t in tokens)
    new = list(tokens)
    if not new:
        return ids.clone()
    return torch.cat([ids, torch.stack(new, dim=1)], dim=1)


@torch.inference_mode()  # as a decorator it also covers every resumption of the generator
def _token_stream(model, ids, max_new_tokens, temperature, top_p, top_k, repetition_penalty,
                  eos_token_id, seed, stop, pad_token_id, quantized=None) -> Iterator[torch.Tensor]:
    batch, prompt_len = ids.shape
    limit = model.config.max_seq_len
    if prompt_len >= limit:
        raise GenerationError(f"the prompt has {prompt_len} tokens but the model's max_seq_len is {limit}; "
                              f"shorten the prompt or the history")
    max_new_tokens = min(int(max_new_tokens), limit - prompt_len)
    if max_new_tokens <= 0 or (stop is not None and stop.is_set()):
        return
    device = ids.device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
    seen = None
    if repetition_penalty != 1.0:
        # One boolean per vocabulary entry and row: O(1) per token instead of a set of the whole sequence.
        seen = torch.zeros(batch, model.config.vocab_size, dtype=torch.bool, device=device)
        seen.scatter_(1, ids, True)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)

    cache = KVCache.for_model(model, batch, prompt_len + max_new_tokens)
    logits = prefill(model, ids, cache)
    pos = prompt_len
    for produced in range(1, max_new_tokens + 1):
        if seen is not None:
            logits = apply_repetition_penalty(logits, seen, repetition_penalty)
        token = sample_next(logits, temperature, top_k, top_p, generator)   # (B,)
        if eos_token_id is not None:
            token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        yield token
        if eos_token_id is not None:
            finished |= token == eos_token_id
            if bool(finished.all()):
                return
        if produced == max_new_tokens or (stop is not None and stop.is_set()):
            return
        if seen is not None:
            seen.scatter_(1, token[:, None], True)
        logits = decode_step(model, token[:, None], cache, pos, quantized)
        pos += 1


def prefill(model: LanguageModel, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run the whole prompt through the model once, filling the cache; returns the last position's logits."""
    # Only the last position is needed: projecting all T positions onto the vocabulary would be wasted work.
    return model(ids, past_key_values=cache, start_pos=0, logits_to_keep=1).logits[:, -1].float()


def decode_step(model: LanguageModel, token: torch.Tensor, cache: KVCache, pos: int,
                quantized: Int8Weights | StackedWeights | None = None) -> torch.Tensor:
    """Logits [B, V] for one new token per row at position `pos`, appending its keys/values to the cache.

    The model's own forward, whose attention reads the cache's grouped K/V heads in place. `quantized`
    supplies the linear layers: StackedWeights (exact, fewer matmuls) or Int8Weights (int8 copies,
    approximate; see int8.py).
    """
    if pos + 1 > min(model.config.max_seq_len, cache.max_len):
        raise GenerationError(f"position {pos} is past the end of the cache ({cache.max_len} tokens)")
    out = model(token, past_key_values=cache, start_pos=pos, logits_to_keep=1, linears=quantized)
    return out.logits[:, -1].float()


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Sign-aware penalty on every token already in the sequence (see the module docstring)."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of `logits` [B, V]. temperature 0 = argmax; top_k 0 and top_p 1 = no filter."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    vocab = logits.shape[-1]
    if (top_k <= 0 or top_k >= vocab) and top_p >= 1.0:
        probs = logits.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    if 0 < top_k < vocab:
        values, index = logits.topk(top_k, dim=-1)                          # sorted, largest first
        probs = values.softmax(dim=-1)
    else:
        values, index, probs = _nucleus_candidates(logits, top_p)
    if top_p < 1.0:
        # Keep the smallest prefix whose probability reaches top_p: drop a token when the mass before it
        # already does. The most likely token is always kept.
        before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(before >= top_p, 0.0)
        probs[:, 0] = torch.where(probs.sum(-1) > 0, probs[:, 0], 1.0)
    choice = torch.multinomial(probs, 1, generator=generator)             # renormalises internally
    return index.gather(1, choice).squeeze(1)


NUCLEUS_CANDIDATES = 256


def _nucleus_candidates(logits: torch.Tensor, top_p: float):
    """The most likely tokens, largest first, with their probabilities over the whole vocabulary.

    Sorting all 6400 logits for every token is the slow part of top-p sampling; the nucleus almost
    always lies within the top few hundred. When the top NUCLEUS_CANDIDATES already hold top_p of the
    mass in every row, the nucleus is inside them and the result is the same; otherwise sort it all."""
    k = min(NUCLEUS_CANDIDATES, logits.shape[-1])
    values, index = logits.topk(k, dim=-1)
    probs = (values - logits.logsumexp(dim=-1, keepdim=True)).exp()
    if k == logits.shape[-1] or bool((probs.sum(dim=-1) >= top_p).all()):
        return values, index, probs
    values, index = logits.sort(dim=-1, descending=True)
    return values, index, values.softmax(dim=-1)


def _as_batch(input_ids, device) -> torch.Tensor:
    ids = input_ids if isinstance(input_ids, torch.Tensor) else torch.tensor(list(input_ids), dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise GenerationError(f"input_ids must be a non-empty [batch, length] tensor, got shape {tuple(ids.shape)}")
    return ids.to(device=device, dtype=torch.long)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device
