"""One conversation with one model: prompt building (template, history, system prompt) and streaming replies."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model import MiniMindLM, Tokenizer
from model.generate import StopFlag, generate
from model.streaming import StreamDecoder

from .reply import ReplyStream, opens_thinking
from .settings import CHAT, CONTINUE, MODES, GenerationSettings


@dataclass
class ReplyStats:
    prompt_tokens: int
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_s: float | None = None
    stopped: bool = False  # cancelled before eos or the token limit

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        first = f", first token {self.first_token_s * 1000:.0f} ms" if self.first_token_s is not None else ""
        return (f"{self.new_tokens} tokens, {self.tokens_per_s:.1f} tok/s{first}"
                f"{' (stopped)' if self.stopped else ''}")


@dataclass
class ChatSession:
    model: MiniMindLM
    tokenizer: Tokenizer
    device: str = "cpu"
    mode: str = CHAT
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    weights: Path | None = None
    adapter: Path | None = None  # the LoRA adapter file attached to the model, if any
    tokenizer_note: str = ""
    history: list[dict] = field(default_factory=list)  # alternating user / assistant messages
    last_stats: ReplyStats | None = None
    parsed: ReplyStream | None = None  # the reply streaming (or the last one), split as it grows

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown chat mode {self.mode!r}; use one of {', '.join(MODES)}")

    def new_chat(self) -> None:
        self.history.clear()

    def template_kwargs(self) -> dict:
        """The thinking switch for the template, under the name this tokenizer's template reads."""
        switch = self.tokenizer.thinking_switch
        return {} if switch is None or self.settings.thinking is None else {switch: self.settings.thinking}

    def prompt(self, text: str, use_history: bool = True) -> tuple[list[int], bool]:
        """(token ids to continue, whether they end inside a think block so the reply starts with reasoning).
        Oldest turns go first when the prompt would not leave room for the reply."""
        max_len = self.model.config.max_seq_len
        budget = max_len - min(self.settings.max_new_tokens, max_len // 2)
        if self.mode == CONTINUE:
            ids = [self.tokenizer.bos_token_id] + self.tokenizer.encode(text)
            return ids[-budget:], False
        turns = self.settings.history_turns if use_history else 0
        past = self.history[-2 * turns:] if turns else []
        while True:
            messages = ([{"role": "system", "content": self.settings.system_prompt}]
                        if self.settings.system_prompt else [])
            messages += past + [{"role": "user", "content": text}]
            rendered = self.tokenizer.apply_chat_template(messages, **self.template_kwargs())
            ids = self.tokenizer.encode(rendered)
            if len(ids) <= budget or not past:
                return ids[-budget:], opens_thinking(rendered)  # a lone question longer than the context keeps its end
            past = past[2:]

    def prompt_ids(self, text: str, use_history: bool = True) -> list[int]:
        return self.prompt(text, use_history)[0]

    def reply(self, text: str, stop: StopFlag | None = None, remember: bool = True) -> Iterator[str]:
        """Stream the answer to `text` as text pieces (whole characters only). Afterwards `last_stats`
        holds the figures and, in chat mode with remember=True, the exchange joins the history
        (also when stopped early: the user saw that partial answer)."""
        s = self.settings
        ids, thinking = self.prompt(text, use_history=remember)
        parsed = self.parsed = ReplyStream(starts_in_thinking=thinking)
        stats = self.last_stats = ReplyStats(prompt_tokens=len(ids))
        decoder = StreamDecoder(self.tokenizer)
        tokens = generate(self.model, ids, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                          top_p=s.top_p, top_k=s.top_k, repetition_penalty=s.repetition_penalty,
                          eos_token_id=self.tokenizer.eos_token_id, stream=True, seed=s.seed, stop=stop,
                          int8=s.int8 and self.device == "cpu")
        start = time.perf_counter()
        ended_on_eos = False
        try:
            for token in tokens:
                stats.new_tokens += 1
                if stats.first_token_s is None:
                    stats.first_token_s = time.perf_counter() - start
                if token == self.tokenizer.eos_token_id:
                    ended_on_eos = True
                    break
                piece = decoder.feed(token)
                if piece:
                    parsed.feed(piece)
                    yield piece
            tail = decoder.finish()
            if tail:
                parsed.feed(tail)
                yield tail
        except Exception:
            remember = False  # a failed reply (e.g. a prompt too long) does not join the conversation
            raise
        finally:
            parsed.close()
            stats.seconds = time.perf_counter() - start
            stats.stopped = bool(stop is not None and stop.is_set() and not ended_on_eos
                                 and stats.new_tokens < s.max_new_tokens)
            if remember and self.mode == CHAT:
                self.history += [{"role": "user", "content": text}, self._assistant_turn(parsed)]

    def _assistant_turn(self, parsed: ReplyStream) -> dict:
        """The reply as the history keeps it for the next prompt: a template that renders `reasoning_content`
        (minimind-3's) gets the reasoning apart from the content, exactly as generated, so it renders the turn
        the way the model produced it; other templates get the text as generated (MiniMind2 keeps its think
        block inline, as its eval_llm.py does)."""
        if not self.tokenizer.takes_reasoning:
            return {"role": "assistant", "content": parsed.text.strip()}
        parts = parsed.parts()
        return {"role": "assistant", "content": parts.content, "reasoning_content": parts.reasoning}

    def answer(self, text: str, stop: StopFlag | None = None, remember: bool = True) -> str:
        return "".join(self.reply(text, stop=stop, remember=remember))

    def use_adapter(self, path: Path | None) -> None:
        """Put the LoRA adapter file `path` on the model (replacing the one attached), or none; a file that does
        not fit the model is refused and leaves the model as it was."""
        from model.lora import load_lora, remove_lora

        if path is None:
            remove_lora(self.model)
        else:
            load_lora(self.model, path)
        self.adapter = Path(path) if path is not None else None

    def describe(self) -> str:
        """One line for a status bar: parameters, adapter, mode and device."""
        n = self.model.num_parameters() / 1e6
        name = self.weights.name if self.weights else "model"
        adapter = f" + LoRA {self.adapter.name}" if self.adapter is not None else ""
        int8 = ", int8" if self.settings.int8 and self.device == "cpu" else ""
        return f"{name}: {n:.1f}M params{adapter}, {self.mode}, on {self.device}{int8}"
