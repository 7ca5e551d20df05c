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
