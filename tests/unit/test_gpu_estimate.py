"""The app's torch-free preset table and parameter count agree with the real model (the memory estimate:
test_memory_plan.py)."""
from __future__ import annotations

import pytest

from minimind_tui.app.presets import PRESETS, default_preset, param_count, presets_of


def test_preset_table_mirrors_model_config():
    from model.config import GENERATION_PRESETS, make_config

    assert set(PRESETS) == {k for presets in GENERATION_PRESETS.values() for k in presets}
    for key, p in PRESETS.items():
        cfg = make_config(p.generation, **GENERATION_PRESETS[p.generation][key])
        assert (p.dim, p.n_layers, p.n_heads, p.n_kv_heads, p.use_moe) == (
            cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.use_moe), key
        if p.max_seq_len:
            assert p.max_seq_len == cfg.max_seq_len
    assert [p.key for p in presets_of("gen3")] == ["minimind-3", "minimind-3-moe"]
    assert (default_preset("v1"), default_preset("gen2"), default_preset("gen3")) == (
        "small", "minimind2-small", "minimind-3")
    # Upstream's published sizes: MiniMind2 kept v1's; minimind-3 63.9M dense, 198.4M MoE.
    assert [PRESETS[k].label for k in ("minimind2", "minimind-3", "minimind-3-moe")] == [
        "minimind2 104M", "minimind-3 64M", "minimind-3-moe 198M"]


@pytest.mark.parametrize("key", list(PRESETS))
def test_param_count_is_exact(key):
    import torch

    from model import MiniMindLM
    from model.config import preset

    with torch.device("meta"):  # no memory, no init time
        model = MiniMindLM(preset(key))
    p = PRESETS[key]
    assert p.params() == model.num_parameters()
    if p.generation == "v1":
        assert param_count(p.dim, p.n_layers, p.use_moe, p.n_heads, p.n_kv_heads) == model.num_parameters()
    with torch.device("meta"):  # the tokenizer's vocabulary sizes the embedding
        assert p.params(vocab=1000) == MiniMindLM(preset(key, vocab_size=1000)).num_parameters()


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
