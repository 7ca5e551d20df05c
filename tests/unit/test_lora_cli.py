"""LoRA adapters from the command line: `chat --lora_weight NAME|PATH` (base + adapter, unmerged) and
`export CKPT --merge-lora ADAPTER --out FILE` (merged full weights in the generation's own format)."""
import io
from pathlib import Path

import pytest
import torch
from testkit import with_random_adapter

from minimind_tui.chat.loading import load_session
from minimind_tui.cli import main
from model import MiniMindLM, Tokenizer, load_lora, load_minimind, make_config, merge_lora, save_lora
from model.generations import save_minimind
from model.lora import LoRALinear, lora_targets, lora_weights_path

DEMO_TOKENIZER = Path(__file__).resolve().parents[2] / "minimind_tui" / "assets" / "demo_tokenizer"


@pytest.fixture(scope="module")
def vocab() -> int:
    if not (DEMO_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip("bundled demo tokenizer not built yet")
    return Tokenizer.from_dir(DEMO_TOKENIZER).vocab_size


@pytest.fixture(params=["v1", "gen2", "gen3"])
def project(request, tmp_path, vocab):
    """out/full_sft_64.pth of the generation, and its adapter `lora_identity` where that generation's trainer
    writes it with --save_dir out (v1 --out_dir out)."""
    generation = request.param
    torch.manual_seed(0)
    sizes = dict(dim=64, n_layers=2, vocab_size=vocab, max_seq_len=256) if generation == "v1" else \
        dict(hidden_size=64, num_hidden_layers=2, vocab_size=vocab, max_position_embeddings=256)
    model = MiniMindLM(make_config(generation, **sizes))
    weights = tmp_path / "out" / "full_sft_64.pth"
    save_minimind(model, weights)
    adapter = lora_weights_path(generation, tmp_path / "out", "lora_identity", 64)
    save_lora(with_random_adapter(model), adapter)
    return generation, tmp_path, weights, adapter


def test_chat_session_with_an_adapter_by_name(project):
    generation, root, weights, adapter = project
    session = load_session(weights, root=root, device="cpu", lora="lora_identity")
    assert session.adapter == adapter
    assert all(isinstance(layer, LoRALinear) for _, layer in lora_targets(session.model))
    assert f"+ LoRA {adapter.name}" in session.describe()
    expected = load_lora(load_minimind(weights), adapter)
    ids = torch.randint(0, 100, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(session.model(ids).logits, expected(ids).logits, atol=0, rtol=0)
    session.use_adapter(None)
    assert session.adapter is None and type(lora_targets(session.model)[0][1]) is torch.nn.Linear


def test_cli_chat_lora_weight_and_its_spellings(project, monkeypatch, capsys):
    _, root, _, adapter = project
    base = ["--root", str(root), "chat", "--dim", "64", "--max_new_tokens", "3", "--temperature", "0",
            "--device", "cpu"]
    for flag, value, shown in (("--lora_weight", "lora_identity", True), ("--lora_name", str(adapter), True),
                               ("--lora_weight", "None", False)):
        monkeypatch.setattr("sys.stdin", io.StringIO("你好\n"))
        assert main([*base, flag, value]) == 0
        err = capsys.readouterr().err
        assert (f"+ LoRA {adapter.name}" in err) == shown, (flag, value)
    monkeypatch.setattr("sys.stdin", io.StringIO("你好\n"))
    assert main([*base, "--lora_weight", "lora_missing"]) == 2
    err = capsys.readouterr().err
    assert "--lora_weight lora_missing: no adapter file found" in err and "Traceback" not in err


def test_cli_export_merges_into_the_generations_own_file(project, tmp_path, capsys):
    generation, root, weights, adapter = project
    out = tmp_path / "merged" / "merged_64.pth"
    assert main(["export", str(weights), "--merge-lora", "lora_identity", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    written = torch.load(out, weights_only=True)
    assert {v.dtype for v in written.values()} == {torch.float32 if generation == "v1" else torch.float16}
    assert list(written) == list(torch.load(weights, weights_only=True))  # full weights, no adapter keys
    expected = merge_lora(load_lora(load_minimind(weights), adapter))
    merged = load_minimind(out)
    assert merged.generation == generation
    ids = torch.randint(0, 100, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected(ids).logits, atol=0, rtol=0)
    assert main(["export", str(weights), "--merge-lora", str(adapter), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", str(weights), "--merge-lora", str(adapter), "--out", str(out.parent)]) == 2
    assert "a folder" in capsys.readouterr().err


def test_cli_export_merge_of_minimind3s_reference_is_its_merged_file(shared_dir, tmp_path, capsys):
    ref = shared_dir / "reference" / "gen3"
    io_ = torch.load(ref / "lora_io.pt", weights_only=True)
    out = tmp_path / "merged.pth"
    assert main(["export", str(ref / "dense.pth"), "--merge-lora", str(ref / "lora.pth"), "--out", str(out)]) == 0
    written = torch.load(out, weights_only=True)
    assert list(written) == io_["merged_state_dict_keys"]
    assert all(torch.equal(written[k], v) for k, v in io_["merged_target_weights"].items())
