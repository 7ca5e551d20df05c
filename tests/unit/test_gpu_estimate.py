"""The app's torch-free preset table and parameter count agree with the real model (the memory estimate:
test_memory_plan.py)."""
from __future__ import annotations

import pytest

from minimind_tui.app.presets import PRESETS, param_count


def test_preset_table_mirrors_model_config():
    from model.config import PRESETS as MODEL_PRESETS
    from model.config import LMConfig

    assert set(PRESETS) == set(MODEL_PRESETS)
    for key, p in PRESETS.items():
        cfg = LMConfig(**MODEL_PRESETS[key])
        assert (p.dim, p.n_layers, p.n_heads, p.n_kv_heads, p.use_moe) == (
            cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.use_moe), key
        if p.max_seq_len:
            assert p.max_seq_len == cfg.max_seq_len


@pytest.mark.parametrize("key", list(PRESETS))
def test_param_count_is_exact(key):
    import torch

    from model import MiniMindLM
    from model.config import preset

    with torch.device("meta"):  # no memory, no init time
        model = MiniMindLM(preset(key))
    p = PRESETS[key]
    assert param_count(p.dim, p.n_layers, p.use_moe, p.n_heads, p.n_kv_heads) == model.num_parameters()


def test_estimate_uses_the_vocabulary_the_trainer_will_use(tmp_path, tiny_tokenizer):
    import shutil

    from minimind_tui.app.presets import VOCAB, tokenizer_vocab
    from minimind_tui.demo import demo_tokenizer_dir
    from minimind_tui.tokenizer_choice import choose_tokenizer_dir
    from model import Tokenizer

    def vocab(*args) -> int:
        return tokenizer_vocab(choose_tokenizer_dir(tmp_path, *args)[0])

    # No tokenizer in the project: the trainer falls back to the bundled demo tokenizer.
    assert vocab() == Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size
    # A MiniMind checkout's model/minimind_tokenizer comes first.
    shutil.copytree(tiny_tokenizer.path, tmp_path / "model" / "minimind_tokenizer")
    assert vocab() == tiny_tokenizer.vocab_size
    # --tokenizer DIR (relative to the project) wins over both.
    shutil.copytree(demo_tokenizer_dir(), tmp_path / "tok")
    assert vocab("tok") == Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size
    assert tokenizer_vocab(tmp_path / "nothing here") == VOCAB
