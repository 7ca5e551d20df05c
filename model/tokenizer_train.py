"""Train a byte-level BPE tokenizer with MiniMind's special tokens from pretraining or SFT JSONL."""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from .tokenizer import SPECIAL_TOKENS, V1_CHAT_TEMPLATE, Tokenizer, render_chat

# MiniMind's chat template, kept so tools that read tokenizer_config.json (transformers) render
# conversations the same way our Python renderer does.
CHAT_TEMPLATE = V1_CHAT_TEMPLATE


def tokenizer_config() -> dict:
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, t in enumerate(SPECIAL_TOKENS)}
    return {
        "add_bos_token": False, "add_eos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": added, "additional_special_tokens": [],
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 32768,
        "spaces_between_special_tokens": False, "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }


def texts_from_jsonl(path: Path):
    """Training text of each line: `text` for pretraining data, the rendered chat for SFT data."""
    from dataset.jsonl import JsonlFile
    from dataset.validate import messages_of, parse_line

    jsonl = JsonlFile(path)
    for i in range(len(jsonl)):
        raw = jsonl.line(i)
        kind = "sft" if b'"conversations"' in raw else "pretrain"
        try:
            obj = parse_line(raw, kind)
        except ValueError:
            continue  # tokenizer training tolerates bad lines; training itself reports them
        if obj is None:
            continue
        yield obj["text"] if kind == "pretrain" else render_chat(messages_of(obj))


def train_tokenizer(paths: list[Path], vocab_size: int, out_dir: Path, progress: bool = False) -> Tokenizer:
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab size {vocab_size} is too small: byte-level BPE needs at least "
                         f"{256 + len(SPECIAL_TOKENS)} (256 bytes + special tokens)")
    backend = _HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())

    def texts():
        for p in paths:
            yield from texts_from_jsonl(Path(p))

    backend.train_from_iterator(texts(), trainer=trainer)
    for i, t in enumerate(SPECIAL_TOKENS):  # MiniMind's ids: <unk>=0, <s>=1, </s>=2
        assert backend.token_to_id(t) == i, (t, backend.token_to_id(t))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    backend.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), ensure_ascii=False, indent=2),
                                                   encoding="utf-8")
    return Tokenizer.from_dir(out_dir)
