import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (reference tokenizer, reference outputs, benchmark data); tests skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (reference material is for local testing only)")
    return SHARED


@pytest.fixture(scope="session")
def ref_tokenizer(shared_dir):
    from model import Tokenizer

    path = shared_dir / "minimind_tokenizer"
    if not (path / "tokenizer.json").is_file():
        pytest.skip("reference tokenizer absent")
    return Tokenizer.from_dir(path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Index and token caches go to a per-session temp folder, never the user's ~/.cache.
    monkeypatch.setenv("MINIMIND_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A hermetic byte-level BPE tokenizer (special tokens <unk>, <s>, </s> = 0, 1, 2) trained in the test
    session on a few bilingual lines, so tokenizer-dependent tests need neither ../shared nor the demo asset."""
    import json

    from model.tokenizer_train import train_tokenizer

    base = tmp_path_factory.mktemp("tiny_tokenizer")
    corpus = base / "corpus.jsonl"
    texts = ["你好，世界！今天天气很好。", "Hello world, the model learns to add: 3 + 4 = 7.",
             "user assistant system 助手 用户", "猫和狗是朋友 🐱🐶 emoji 😀", "训练数据 training data 1234567890"]
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts * 20),
                      encoding="utf-8")
    return train_tokenizer([corpus], 400, base / "tok")


# A small ChatML template written for these tests (MiniMind2/minimind-3 style: a system turn with the tool
# definitions, think blocks on every assistant turn, tool calls as JSON, tool responses in a user turn).
CHATML_TEST_TEMPLATE = "".join([
    "{%- if tools %}{{- '<|im_start|>system\\n' }}",
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}",
    "{{- '# Tools' }}{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}{{- '<|im_end|>\\n' }}",
    "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}",
    "{%- endif %}",
    "{%- for m in messages %}",
    "{%- if m.role == 'user' or (m.role == 'system' and not loop.first) %}",
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}",
    "{%- elif m.role == 'assistant' %}",
    "{{- '<|im_start|>assistant\\n<think>\\n' + (m.reasoning_content or '') + '\\n</think>\\n\\n' }}",
    "{{- m.content or '' }}",
    "{%- for call in (m.tool_calls or []) %}",
    "{{- '<tool_call>\\n' + ({'name': call.name, 'arguments': call.arguments} | tojson) + '\\n</tool_call>' }}",
    "{%- endfor %}{{- '<|im_end|>\\n' }}",
    "{%- elif m.role == 'tool' %}",
    "{{- '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}",
    "{%- endif %}{%- endfor %}",
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}",
    "{%- if open_thinking is defined and open_thinking %}{{- '<think>\\n' }}",
    "{%- else %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}",
])


def _chatml_tokenizer(folder, think_tokens: bool):
    """A hermetic byte-level BPE tokenizer with MiniMind2/minimind-3's special tokens (<|endoftext|>,
    <|im_start|>, <|im_end|> = 0, 1, 2) and, for the minimind-3 kind, <think>-style tokens added as single
    non-special tokens."""
    import json

    from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer

    from model import Tokenizer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = HFTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = ["你好，世界！今天天气很好。", "user assistant system tool 助手 用户", "Hello world: 3 + 4 = 7.",
             '{"name": "get_weather", "arguments": {"city": "上海"}}', "think reasoning 推理 思考"]
    backend.train_from_iterator(texts * 20, trainer=trainer)
    if think_tokens:
        backend.add_tokens([AddedToken(t, special=False, normalized=False)
                            for t in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
                                      "<think>", "</think>")])
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "chat_template": CHATML_TEST_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return Tokenizer.from_dir(folder)


@pytest.fixture(scope="session")
def chatml_tokenizer(tmp_path_factory):
    """minimind-3-like: <think> and the tool tags are single added tokens (generation "gen3")."""
    return _chatml_tokenizer(tmp_path_factory.mktemp("chatml3") / "tok", think_tokens=True)


@pytest.fixture(scope="session")
def chatml2_tokenizer(tmp_path_factory):
    """MiniMind2-like: the same special tokens, <think> spelled by ordinary BPE pieces (generation "gen2")."""
    return _chatml_tokenizer(tmp_path_factory.mktemp("chatml2") / "tok", think_tokens=False)


@pytest.fixture(scope="module", params=["gen2", "gen3"])
def gen(request, shared_dir):
    """(generation, its reference tokenizer, its reference folder), for MiniMind2 and minimind-3 in turn."""
    from model import Tokenizer

    path = shared_dir / "tokenizers" / request.param
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"reference {request.param} tokenizer absent")
    return request.param, Tokenizer.from_dir(path), shared_dir / "reference" / request.param
