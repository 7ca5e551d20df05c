import pytest
import torch

from model import LMConfig, MiniMindLM, preset
from model.checkpoint import CheckpointError, infer_config, load_model, load_state_dict


def test_hidden_dim_is_64_multiple_of_8_thirds_dim():
    assert LMConfig(dim=512).hidden_dim == 1408
    assert LMConfig(dim=768).hidden_dim == 2048
    assert LMConfig(dim=640).hidden_dim == 1728


@pytest.mark.parametrize("name,millions", [("small", 25.8), ("base", 104.0), ("moe", 145.0)])
def test_preset_parameter_counts_match_minimind(name, millions):
    with torch.device("meta"):
        model = MiniMindLM(preset(name))
    assert model.num_parameters() / 1e6 == pytest.approx(millions, abs=0.6)


def test_state_dict_keys_are_minimind_names():
    sd = MiniMindLM(LMConfig(dim=64, n_layers=2, max_seq_len=32)).state_dict()
    for key in ["tok_embeddings.weight", "output.weight", "norm.weight", "layers.1.attention.wq.weight",
                "layers.1.attention.wk.weight", "layers.0.attention_norm.weight", "layers.0.ffn_norm.weight",
                "layers.0.feed_forward.w1.weight", "layers.0.feed_forward.w2.weight"]:
        assert key in sd
    assert sd["layers.0.attention.wk.weight"].shape == (16, 64)  # 2 KV heads of 8 dims


def test_moe_state_dict_keys():
    sd = MiniMindLM(LMConfig(dim=64, n_layers=1, use_moe=True, max_seq_len=32)).state_dict()
    assert "layers.0.feed_forward.experts.3.w3.weight" in sd
    assert "layers.0.feed_forward.gate.weight" in sd
    assert "layers.0.feed_forward.shared_experts.w1.weight" in sd


def test_embeddings_are_tied():
    m = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32))
    assert m.tok_embeddings.weight is m.output.weight


@pytest.mark.parametrize("name", ["minimind_tiny", "minimind_tiny_moe"])
def test_reference_logits_reproduced(shared_dir, name):
    io = torch.load(shared_dir / "reference" / f"{name}_io.pt", weights_only=True)
    sd = load_state_dict(shared_dir / "reference" / f"{name}.pth")
    model = MiniMindLM(LMConfig.from_dict(io["config"]))
    model.load_state_dict(sd, strict=True)
    model.eval()
    with torch.no_grad():
        out = model(io["input_ids"])
    torch.testing.assert_close(out.logits, io["logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.last_hidden_state, io["last_hidden_state"], atol=1e-5, rtol=0)


def test_reference_moe_train_mode_aux_loss(shared_dir):
    io = torch.load(shared_dir / "reference" / "minimind_tiny_moe_io.pt", weights_only=True)
    model = MiniMindLM(LMConfig.from_dict(io["config"]))
    model.load_state_dict(load_state_dict(shared_dir / "reference" / "minimind_tiny_moe.pth"))
    model.train()
    out = model(io["input_ids"])
    assert out.aux_loss.item() == pytest.approx(io["aux_loss_train_mode"].item(), abs=1e-5)
    # The reference rounds expert outputs through fp16 in train mode; we keep fp32.
    torch.testing.assert_close(out.logits, io["logits_train_mode"], atol=2e-3, rtol=0)


def test_seed0_init_equals_reference_init(shared_dir):
    io = torch.load(shared_dir / "reference" / "minimind_tiny_io.pt", weights_only=True)
    sd = load_state_dict(shared_dir / "reference" / "minimind_tiny.pth")
    torch.manual_seed(0)
    ours = MiniMindLM(LMConfig.from_dict(io["config"])).state_dict()
    assert all(torch.equal(ours[k], sd[k]) for k in sd)


def test_masked_loss_equals_full_logits_loss():
    torch.manual_seed(1)
    m = MiniMindLM(LMConfig(dim=64, n_layers=2, max_seq_len=64))
    x = torch.randint(0, 6400, (3, 20))
    y = torch.randint(0, 6400, (3, 20))
    mask = (torch.rand(3, 20) > 0.5).long()
    out = m(x, labels=y, loss_mask=mask)
    ce = torch.nn.functional.cross_entropy(out.logits.view(-1, 6400), y.view(-1), reduction="none")
    expected = (ce * mask.view(-1)).sum() / mask.sum()
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)


def test_loss_rows_give_the_loss_mask_loss_and_not_both():
    torch.manual_seed(1)
    m = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=64))
    x, y = torch.randint(0, 6400, (2, 10)), torch.randint(0, 6400, (2, 10))
    mask = (torch.rand(2, 10) > 0.5).long()
    rows = mask.reshape(-1).nonzero().squeeze(1)
    by_mask = m(x, labels=y, loss_mask=mask, return_logits=False).loss
    torch.testing.assert_close(m(x, labels=y, loss_rows=rows, return_logits=False).loss, by_mask, atol=0, rtol=0)
    with pytest.raises(ValueError, match="not both"):
        m(x, labels=y, loss_mask=mask, loss_rows=rows)


def test_a_misspelt_keyword_is_an_error_not_ignored():
    m = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32))
    x = torch.randint(0, 6400, (1, 8))
    with pytest.raises(TypeError, match="loss_masks"):
        m(x, labels=x, loss_masks=torch.zeros_like(x))  # would train without the mask if swallowed


def test_minimind_names_still_work():
    m = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32))
    out = m(torch.randint(0, 6400, (1, 8)))
    assert m.params is m.config and out["logits"] is out.logits


def test_attention_reads_grouped_kv_heads_in_place(monkeypatch):
    """Training, prefill and decoding all hand SDPA the n_kv_heads K/V heads (enable_gqa), never copies."""
    from model.generate import decode_step, prefill
    from model.kv_cache import KVCache

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.shape[1], k.shape[1], kw.get("enable_gqa")))
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    m = MiniMindLM(LMConfig(dim=64, n_layers=2, n_heads=8, n_kv_heads=2, max_seq_len=32))
    x = torch.randint(0, 6400, (2, 8))
    m(x, labels=x).loss.backward()
    with torch.no_grad():
        cache = KVCache.for_model(m.eval(), 2, 16)
        prefill(m, x, cache)
        decode_step(m, x[:, :1], cache, 8)
    assert seen and set(seen) == {(8, 2, True)}


def test_autocast_casts_each_normed_activation_once():
    """Under autocast the normed input of attention (q, k, v) and of the FFN (w1, w3) is cast once per layer,
    not once per projection; plus the final norm's, for the logits."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Casts(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.shapes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
                self.shapes.append(tuple(args[0].shape))
            return func(*args, **kwargs)

    m = MiniMindLM(LMConfig(dim=64, n_layers=3, max_seq_len=32))
    x = torch.randint(0, 6400, (2, 5))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), Casts() as casts:
        m(x)
    assert casts.shapes.count((2, 5, 64)) == 2 * 3 + 1


def test_all_zero_mask_gives_zero_loss_not_nan():
    m = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32))
    x = torch.randint(0, 6400, (1, 8))
    out = m(x, labels=x, loss_mask=torch.zeros_like(x))
    assert out.loss.item() == 0.0


def test_tuple_cache_matches_full_forward():
    torch.manual_seed(2)
    m = MiniMindLM(LMConfig(dim=64, n_layers=2, max_seq_len=64)).eval()
    x = torch.randint(0, 6400, (2, 12))
    with torch.no_grad():
        full = m(x).logits
        out = m(x[:, :8], use_cache=True)
        step = m(x[:, 8:], past_key_values=out.past_key_values, use_cache=True, start_pos=8)
    torch.testing.assert_close(step.logits, full[:, 8:], atol=1e-5, rtol=0)


def test_infer_config_and_load_model_roundtrip(tmp_path):
    cfg = LMConfig(dim=128, n_layers=3, max_seq_len=64, use_moe=True)
    m = MiniMindLM(cfg)
    torch.save(m.state_dict(), tmp_path / "x.pth")
    inferred = infer_config(load_state_dict(tmp_path / "x.pth"))
    assert (inferred.dim, inferred.n_layers, inferred.use_moe, inferred.n_kv_heads) == (128, 3, True, 2)
    loaded = load_model(tmp_path / "x.pth", max_seq_len=64)
    assert torch.equal(loaded.output.weight, m.output.weight)


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    sd = MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32)).state_dict()
    sd["layers.0.attention.wq.weight"] = torch.zeros(32, 64)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"layers\.0\.attention\.wq\.weight.*\(32, 64\).*\(64, 64\)"):
        load_model(tmp_path / "bad.pth")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_pickled_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    torch.save(MiniMindLM(LMConfig(dim=64, n_layers=1, max_seq_len=32)).state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_state_dict(tmp_path / "cut.pth")


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"hello\n", "not a readable checkpoint"),  # the unpickler raises KeyError on this
    (b"\x80\x04}\x94.", "not a torch checkpoint"),  # a bare pickle
])
def test_a_file_that_is_no_checkpoint_gets_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "x.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_state_dict(tmp_path / "x.pth")
    assert str(caught.value).startswith(f"{tmp_path / 'x.pth'}: ") and "\n" not in str(caught.value)


def test_the_trainers_forward_is_one_compiled_graph():
    """With the collator's loss rows the loss needs no nonzero(): torch.compile sees no graph break."""
    import torch._dynamo as dynamo

    if not dynamo.is_dynamo_supported():
        pytest.skip("torch.compile does not support this Python")
    m = MiniMindLM(LMConfig(dim=64, n_layers=2, max_seq_len=64))
    x = torch.randint(0, 6400, (2, 16))
    try:
        explained = dynamo.explain(m)(x, labels=x, loss_rows=torch.arange(5, 20), return_logits=False)
    finally:
        dynamo.reset()  # no compiled code left behind for other tests
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
