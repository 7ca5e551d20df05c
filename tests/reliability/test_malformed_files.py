"""Round two, item 13: malformed files and flags give one line naming what to fix (exit status 2), never a
traceback. Every case goes through the CLI as a user would hit it: `import`, `data inspect`, `train` (new and
--resume), `chat` and `export`; a damaged checkpoint's meta.json is skipped where another checkpoint can
stand in (resume, chat and --init on a run folder, the Chat tab's list).
"""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from reliability_kit import TINY, cache_env, one_line_error
from testkit import train_here

from minimind_tui.cli import main as cli_main
from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout

DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON that Python's parser cannot nest into


@pytest.fixture(scope="module")
def project(tmp_path_factory, corpus):
    """A finished tiny pretraining run under runs/r with checkpoints at steps 1 and 2, and its newest
    checkpoint exported as a Hugging Face folder hf/."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("malformed_project")
    try:
        assert train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                          "--save_interval", "1", "--run_dir", "runs/r", env=cache_env(tmp_path_factory),
                          monkeypatch=mp) == 0
        newest = layout.complete_checkpoints(root / "runs" / "r")[-1]
        assert cli_main(["export", str(newest / layout.MODEL_FILE), "--out", str(root / "hf"),
                         "--tokenizer", str(demo_tokenizer_dir())]) == 0
    finally:
        mp.undo()
    return root


def rewrite_header(path: Path, change) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = change(json.loads(raw[8:8 + n]))
    text = header.encode() if isinstance(header, str) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def first_tensor(header: dict) -> str:
    return next(k for k in header if k != "__metadata__")


def offsets_as(value):
    def change(header):
        header[first_tensor(header)]["data_offsets"] = value
        return header
    return change


def sharded(hf: Path, index) -> None:
    (hf / "model.safetensors").rename(hf / "shard1.safetensors")
    (hf / "model.safetensors.index.json").write_text(index if isinstance(index, str) else json.dumps(index))


HF_DAMAGE = {
    "data_offsets strings": lambda hf: rewrite_header(hf / "model.safetensors", offsets_as(["0", "16"])),
    "data_offsets float and bool": lambda hf: rewrite_header(hf / "model.safetensors", offsets_as([0.5, True])),
    "header nested 100,000 deep": lambda hf: rewrite_header(hf / "model.safetensors", lambda h: DEEP),
    "config.json nested 100,000 deep": lambda hf: (hf / "config.json").write_text(DEEP),
    "index nested 100,000 deep": lambda hf: sharded(hf, '{"weight_map": ' + DEEP + "}"),
    "weight_map value a list": lambda hf: sharded(hf, {"weight_map": {"model.embed_tokens.weight": ["shard1"]}}),
    "weight_map a list": lambda hf: sharded(hf, {"weight_map": ["shard1.safetensors"]}),
}


@pytest.mark.parametrize("kind", list(HF_DAMAGE))
def test_import_of_a_malformed_hf_folder(copy, capsys, kind, measured):
    HF_DAMAGE[kind](copy / "hf")
    line = one_line_error(capsys, cli_main(["import", "hf", "--out", "x.pth"]))
    assert "hf/" in line and not (copy / "x.pth").exists()
    measured[f"import, {kind}"] = line.removeprefix("minimind-tui: ")


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', DEEP])
def test_a_tokenizer_config_that_is_not_an_object(copy, corpus, capsys, content):
    tok = copy / "tok"
    shutil.copytree(demo_tokenizer_dir(), tok)
    (tok / "tokenizer_config.json").write_text(content)
    line = one_line_error(capsys, cli_main(["data", "inspect", str(corpus["pretrain"]), "--tokenizer", "tok"]))
    assert "tok/tokenizer_config.json" in line


def break_newest_meta(root: Path, content: str = "[1, 2]") -> Path:
    newest = layout.complete_checkpoints(root / "runs" / "r")[-1]
    (newest / layout.META_FILE).write_text(content)
    return newest


@pytest.mark.parametrize("content", ["[1, 2]", "3", DEEP, '{"sha256": ["model.pth"]}'])
def test_resume_falls_back_past_a_meta_json_that_is_not_an_object(copy, monkeypatch, capsys, content):
    newest = break_newest_meta(copy, content)
    assert train_here(copy, "pretrain", "--resume", "runs/r", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"{newest.relative_to(copy)}/meta.json" in out and "falling back" in out
    assert "resuming from runs/r/checkpoints/step_00000001 (step 1)" in out


def test_chat_and_its_list_skip_a_checkpoint_whose_meta_json_is_not_an_object(copy, monkeypatch, capsys):
    from minimind_tui.tokenizer_choice import find_weights

    newest = break_newest_meta(copy)
    previous = layout.complete_checkpoints(copy / "runs" / "r")[-2]
    labels = [c.label for c in layout.find_checkpoints(copy)]  # what the Chat tab lists
    assert "r step 1 (pretrain)" in labels and not any("step 2" in label for label in labels)
    assert find_weights(copy / "runs" / "r") == previous / layout.MODEL_FILE  # chat --ckpt / --init a run folder
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    assert cli_main(["chat", "--ckpt", "runs/r", "--model_mode", "0", "--max_new_tokens", "2", "--auto"]) == 0
    capsys.readouterr()
    for command in (["chat", "--ckpt", str(newest), "--max_new_tokens", "2", "--auto"],
                    ["export", str(newest / layout.MODEL_FILE), "--out", "hf2"]):
        # Named alone, the checkpoint cannot be verified, and its heads could be misread from the shapes.
        line = one_line_error(capsys, cli_main(command))
        assert f"{newest.relative_to(copy)}/meta.json" in line
    assert not (copy / "hf2").exists()


@pytest.mark.parametrize("edit", [("dim", 64), ("n_kv_heads", 1), ("n_layers", 2), ("dim", "sixty-four")])
def test_a_hand_edited_config_json_that_contradicts_the_checkpoint(copy, monkeypatch, capsys, edit, measured):
    config_file = copy / "runs" / "r" / layout.CONFIG
    config = json.loads(config_file.read_text())
    config["settings"][edit[0]] = edit[1]
    config_file.write_text(json.dumps(config))
    before = sorted(p.name for p in (copy / "runs" / "r" / layout.CHECKPOINTS).iterdir())
    line = one_line_error(capsys, train_here(copy, "pretrain", "--resume", "runs/r", monkeypatch=monkeypatch))
    assert "runs/r/config.json" in line and edit[0] in line
    assert sorted(p.name for p in (copy / "runs" / "r" / layout.CHECKPOINTS).iterdir()) == before
    measured[f"resume, config.json {edit[0]} -> {edit[1]!r}"] = line.removeprefix("minimind-tui: ")


@pytest.mark.parametrize("flags", [("--n_heads", "0"), ("--n_kv_heads", "0"), ("--learning_rate", "nan"),
                                   ("--learning_rate", "inf"), ("--grad_clip", "nan"), ("--dim", "30")])
def test_impossible_flags_are_refused_before_a_run_folder_exists(tmp_path, corpus, monkeypatch, capsys, flags):
    args = ["--data_path", str(corpus["pretrain"]), *TINY, "--init", "none", *flags]
    line = one_line_error(capsys, train_here(tmp_path, "pretrain", *args, monkeypatch=monkeypatch))
    assert flags[0].lstrip("-") in line or "dim 30" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
