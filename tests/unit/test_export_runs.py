"""`export` takes what `chat` and `train --init` take (a run folder, a checkpoint folder, a .pth), and declares
the max_position_embeddings its help promises."""
from __future__ import annotations

import json

import torch

from minimind_tui.cli import main
from minimind_tui.runs import layout
from model.config import LMConfig
from model.model import MiniMindLM


def write_run(root, tokenizer, config: LMConfig, record_config: bool = True):
    """runs/r with one complete checkpoint (step 5) and an older interrupted one, as the trainer leaves them."""
    run = root / "runs" / "r"
    for step, complete in ((3, True), (5, True), (7, False)):
        ck = layout.checkpoint_dir(run, step)
        ck.mkdir(parents=True)
        torch.manual_seed(step)
        torch.save(MiniMindLM(config).state_dict(), ck / layout.MODEL_FILE)
        meta = {"step": step, "mode": "pretrain", "tokenizer": str(tokenizer.path)}
        (ck / layout.META_FILE).write_text(json.dumps({**meta, **({"config": config.to_dict()} if record_config
                                                                  else {})}))
        if complete:
            (ck / layout.COMPLETE).write_text("")
    (run / layout.METRICS).write_text("")
    return run


def read_config(folder):
    return json.loads((folder / "config.json").read_text())


def test_a_run_folder_exports_its_newest_complete_checkpoint(tmp_path, tiny_tokenizer, capsys):
    config = LMConfig(dim=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=tiny_tokenizer.vocab_size,
                      max_seq_len=48)
    run = write_run(tmp_path, tiny_tokenizer, config)
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    out = capsys.readouterr().out
    assert "max_position_embeddings 48" in out
    cfg = read_config(tmp_path / "hf")
    assert cfg["max_position_embeddings"] == 48 and cfg["num_attention_heads"] == 4  # recorded with it
    from minimind_tui.interop.safetensors_io import load_safetensors

    step5 = torch.load(layout.checkpoint_dir(run, 5) / layout.MODEL_FILE, weights_only=True)
    exported = load_safetensors(tmp_path / "hf" / "model.safetensors")[0]
    assert torch.equal(exported["model.embed_tokens.weight"], step5["tok_embeddings.weight"])  # step 5, not 3 or 7
    # A checkpoint folder works too; --max_seq_len overrides what was recorded.
    assert main(["export", str(layout.checkpoint_dir(run, 3)), "--out", str(tmp_path / "hf3"),
                 "--max_seq_len", "256"]) == 0
    assert read_config(tmp_path / "hf3")["max_position_embeddings"] == 256


def test_without_a_record_it_declares_the_default_of_its_help(tmp_path, tiny_tokenizer, capsys):
    import argparse

    from minimind_tui.commands.export import register  # the help text, as `export --help` prints it

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    config = LMConfig(dim=32, n_layers=1, n_heads=8, n_kv_heads=2, vocab_size=tiny_tokenizer.vocab_size,
                      max_seq_len=48)
    run = write_run(tmp_path, tiny_tokenizer, config, record_config=False)
    assert main(["export", str(run), "--out", str(tmp_path / "hf")]) == 0
    assert read_config(tmp_path / "hf")["max_position_embeddings"] == 8192
    help_text = parser._subparsers._group_actions[0].choices["export"].format_help()
    assert "when recorded; else 8192" in " ".join(help_text.split())


def test_a_folder_without_weights_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "hf")]) == 2
    assert "no model.pth and no complete checkpoint inside" in capsys.readouterr().err
