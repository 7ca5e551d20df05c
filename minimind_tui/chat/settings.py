"""What a user can tune in a chat. Torch-free, so the dashboard can build its form from it."""
from __future__ import annotations

from dataclasses import dataclass

CHAT = "chat"          # SFT weights: the chat template, multi-turn
CONTINUE = "continue"  # pretrained weights: plain continuation of "<s>" + text
MODES = (CHAT, CONTINUE)


@dataclass
class GenerationSettings:
    # MiniMind's eval_model.py defaults, except that max_new_tokens bounds only the reply.
    temperature: float = 0.85
    top_p: float = 0.85
    top_k: int = 0
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    history_turns: int = 0  # earlier exchanges (question + answer) sent again; 0 = single turn, as MiniMind
    system_prompt: str = ""  # "" = the template's default MiniMind system prompt
    seed: int | None = None
    int8: bool = False  # CPU only: int8 weight copies for decoding, faster and slightly approximate
    # Reasoning on or off, passed to the chat template under its own switch (Tokenizer.thinking_switch:
    # minimind-3's open_thinking, MiniMind2's enable_thinking); None passes nothing (the template's default).
    thinking: bool | None = None

    def validate(self) -> GenerationSettings:
        """Raise ValueError naming the first setting out of range."""
        checks = [
            (self.temperature >= 0, "temperature must be >= 0 (0 = greedy)"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be >= 0 (0 = off)"),
            (self.max_new_tokens >= 1, "max new tokens must be >= 1"),
            (self.repetition_penalty > 0, "repetition penalty must be > 0 (1 = off)"),
            (self.history_turns >= 0, "history turns must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self


def mode_for_training_mode(training_mode: str | None, weights_name: str = "") -> str:
    """Pretrained weights continue text; anything fine-tuned (sft, lora, distill...) chats. Without a recorded
    mode, a file whose name contains "pretrain" continues, as minimind-3's eval_llm.py decides."""
    if training_mode:
        return CONTINUE if training_mode == "pretrain" else CHAT
    return CONTINUE if "pretrain" in weights_name else CHAT


# What MiniMind's own eval script of each generation defaults to where they differ (v1: eval_model.py, whose
# replies are bounded by this project's 512 tokens; MiniMind2's and minimind-3's eval_llm.py). `chat` uses
# them for the flags not given, once the weights have told the generation.
EVAL_DEFAULTS = {
    "v1": {"hidden_size": 512, "top_p": 0.85, "max_new_tokens": 512},
    "gen2": {"hidden_size": 512, "top_p": 0.85, "max_new_tokens": 8192},
    "gen3": {"hidden_size": 768, "top_p": 0.95, "max_new_tokens": 8192},
}


def default_thinking(generation: str, weight: str = "") -> bool | None:
    """The thinking switch eval_llm.py sets: minimind-3 passes open_thinking (0 by default); MiniMind2 passes
    enable_thinking=True only for its `reason` weights and nothing otherwise (which its template reads alike)."""
    if generation == "gen3":
        return False
    if generation == "gen2" and weight == "reason":
        return True
    return None
