"""Fixed probe prompts: the same questions to every checkpoint, so two can be compared at a glance.

Written for this project in the spirit of MiniMind's eval prompts: short openings for continuation,
everyday questions for chat, in Chinese and English.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .settings import CHAT

CONTINUATION_PROMPTS = [
    "长江是中国最长的河流，",
    "光合作用是植物",
    "人工智能的发展历史可以追溯到",
    "北京是中国的首都，",
    "The theory of gravity explains",
    "The largest ocean on Earth is",
]

CHAT_PROMPTS = [
    "你好，请介绍一下你自己。",
    "为什么天空是蓝色的？",
    "请用三句话解释什么是机器学习。",
    "给我推荐几本适合初学者的编程书。",
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
]


@dataclass
class Probe:
    prompt: str
    expected: str | None = None  # a substring a correct answer contains, when one is known

    def check(self, answer: str) -> bool | None:
        # Only the first sentence counts: a continuation goes on to state other facts (and other numbers).
        if self.expected is None:
            return None
        first = re.split(r"[。.!?！？\n]", answer.strip(), maxsplit=1)[0]
        return self.expected in first


def probes(mode: str, demo: bool = False) -> list[Probe]:
    """The probe set for a mode. demo=True (a model trained on the bundled demo corpus) adds the demo's
    held-out questions, which have checkable answers."""
    found = [Probe(p) for p in (CHAT_PROMPTS if mode == CHAT else CONTINUATION_PROMPTS)]
    if demo:
        from minimind_tui.demo import held_out_questions

        if mode == CHAT:
            found = [Probe(q, a) for q, a in held_out_questions()] + found
        else:  # the pretraining text states sums as "a 加 b 等于 s。" / "a plus b equals s."
            found = [Probe(q.replace("等于多少？", "等于").replace("What is ", "").replace("?", " equals"), a)
                     for q, a in held_out_questions()] + found
    return found
