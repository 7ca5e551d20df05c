"""Chat and generation pick their CPU threads from the host's load: next to a busy trainer, one thread."""
from __future__ import annotations

import json

import pytest
import torch

from minimind_tui.chat.loading import inference_threads, load_session
from minimind_tui.demo import demo_tokenizer_dir
from model import LMConfig, MiniMindLM, Tokenizer


def test_threads_are_the_cores_the_load_leaves():
    assert inference_threads(2, 2.0) == 1    # a trainer busy on both cores: one thread, not two
    assert inference_threads(2, 0.1) == 2
    assert inference_threads(16, 7.8) == 8
    assert inference_threads(4, 40.0) == 1   # never none
    assert inference_threads(4, 0.0) == 4    # never more than the cores


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("load, threads", [(2.0, 1), (0.0, 2)])
def test_loading_a_chat_model_sets_the_threads(tmp_path, monkeypatch, restore_threads, load, threads):
    tokenizer = Tokenizer.from_dir(demo_tokenizer_dir())
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=tokenizer.vocab_size))
    weights = tmp_path / "full_sft_32.pth"
    torch.save(model.state_dict(), weights)
    (tmp_path / "full_sft_32.meta.json").write_text(json.dumps(
        {"mode": "sft", "config": model.config.to_dict(), "tokenizer": str(demo_tokenizer_dir()),
         "weights_size": weights.stat().st_size}))
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("psutil.getloadavg", lambda: (load, load, load))
    load_session(weights, root=tmp_path, device="cpu")
    assert torch.get_num_threads() == threads
