import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # testkit.py
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
