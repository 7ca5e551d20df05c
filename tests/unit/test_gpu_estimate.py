"""The app's torch-free preset table and memory estimate agree with the real model."""
from __future__ import annotations

import pytest

from minimind_tui.app.presets import PRESETS, estimate_memory, param_count


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


def test_estimate_matches_the_reference_run_and_scales():
    # The reference MiniMind run used about 14 GB at batch 64 x 512, dim 512, 8 layers, bf16.
    ref = estimate_memory(512, 8, 64, 512, "bfloat16")
    assert 9 < ref.total_gb < 20
    half = estimate_memory(512, 8, 32, 512, "bfloat16")
    assert half.activations_gb == pytest.approx(ref.activations_gb / 2)
    assert estimate_memory(512, 8, 64, 512, "float32").total_gb > ref.total_gb
    assert estimate_memory(640, 8, 64, 512, use_moe=True).total_gb > estimate_memory(640, 8, 64, 512).total_gb


def test_activation_term_is_within_2x_of_what_autograd_saves():
    """Calibration check: count the bytes autograd keeps for backward in a real fp32 forward pass."""
    import torch

    from model import LMConfig, MiniMindLM

    torch.manual_seed(0)
    dim, layers, batch, seq = 256, 2, 2, 128
    model = MiniMindLM(LMConfig(dim=dim, n_layers=layers, max_seq_len=seq))
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.data_ptr()] = t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(torch.randint(0, 6400, (batch, seq))).logits
    saved_without_logits = sum(seen.values()) - logits.numel() * 4
    est = estimate_memory(dim, layers, batch, seq, "float32")
    estimated = est.activations_gb * 1024**3
    assert saved_without_logits / 2 < estimated < saved_without_logits * 2


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
