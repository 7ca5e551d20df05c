"""Scenario 5: a .pth whose unpickling would run code, fed to every load path (resume, SFT --init, chat,
export, import): refused with a clear message naming the file, and the code never runs (no marker file)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from reliability_kit import TINY, cache_env
from testkit import of_kind, train_here

from minimind_tui.cli import main as cli_main
from minimind_tui.runs import layout
from model.checkpoint import sha256

REFUSED = "refused: this file needs arbitrary Python code to load"


class _Payload:
    """Unpickling this calls os.system: the attack a shared checkpoint can carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_evil(path: Path, marker: Path, around: dict | None = None) -> Path:
    """A state dict with real tensors and the payload hidden among them."""
    obj = {**(around or {"tok_embeddings.weight": torch.zeros(4, 4)}), "extra": _Payload(marker)}
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory, corpus):
    """A stopped tiny pretraining run (checkpoints at steps 2 and 4) and its exported weights."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("evil_project")
    try:
        assert train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--batch_size", "8",
                          "--accumulation_steps", "1", "--save_interval", "2", "--run_dir", "runs/r",
                          env={**cache_env(tmp_path_factory), "MINIMIND_TUI_STOP_AT_STEP": "4"}, monkeypatch=mp) == 0
    finally:
        mp.undo()
    return root


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the payload ran"


def test_the_payload_is_real(tmp_path):
    """Guard against a payload that would do nothing anyway: a plain unpickle does run it."""
    marker = tmp_path / "ran"
    write_evil(tmp_path / "evil.pth", marker)
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("victim", [layout.MODEL_FILE, layout.STATE_FILE])
def test_resume_refuses_and_falls_back(project, tmp_path, monkeypatch, capsys, marker, victim):
    root = tmp_path / "p"
    shutil.copytree(project, root)
    newest = layout.complete_checkpoints(root / "runs" / "r")[-1]
    real = torch.load(newest / layout.MODEL_FILE, weights_only=True)
    write_evil(newest / victim, marker, around=real if victim == layout.MODEL_FILE else {"step": torch.tensor(4)})
    meta = json.loads((newest / layout.META_FILE).read_text())
    meta["sha256"][victim] = sha256(newest / victim)  # an attacker can fix the checksum too
    (newest / layout.META_FILE).write_text(json.dumps(meta))

    assert train_here(root, "pretrain", "--resume", "runs/r", monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"runs/r/checkpoints/step_00000004/{victim}" in out and "falling back" in out
    if victim == layout.MODEL_FILE:
        assert REFUSED in out
    else:
        assert "not a loadable training state" in out and "weights_only" in out.replace("Weights only", "weights_only")
    assert of_kind(root / "runs" / "r", "start")[-1]["resumed_from"] == 2


def test_sft_init_refuses(project, tmp_path, monkeypatch, capsys, marker, corpus):
    evil = write_evil(tmp_path / "evil.pth", marker)
    code = train_here(tmp_path, "sft", "--data_path", str(corpus["sft"]), *TINY, "--init", str(evil),
                      "--run_dir", "sft", monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and f"{evil}: {REFUSED}" in err and "Traceback" not in err


def test_chat_refuses(project, tmp_path, monkeypatch, capsys, marker):
    from minimind_tui.chat.loading import load_session
    from model.checkpoint import CheckpointError

    evil = write_evil(tmp_path / "evil.pth", marker)
    with pytest.raises(CheckpointError, match=REFUSED):
        load_session(evil, root=project, device="cpu")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["chat", "--ckpt", str(evil), "--device", "cpu", "--auto"]) == 2
    err = capsys.readouterr().err
    assert REFUSED in err and str(evil) in err and "Traceback" not in err


def test_export_refuses(tmp_path, monkeypatch, capsys, marker):
    evil = write_evil(tmp_path / "evil.pth", marker)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["export", str(evil), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert f"{evil}: {REFUSED}" in err and "Traceback" not in err
    assert not (tmp_path / "hf" / "config.json").exists()


def test_import_refuses(project, tmp_path, monkeypatch, capsys, marker):
    monkeypatch.chdir(tmp_path)
    weights = project / "out" / "pretrain_32.pth"
    assert cli_main(["export", str(weights), "--out", str(tmp_path / "hf"), "--n_heads", "4"]) == 0
    hf = tmp_path / "hf"
    for f in hf.glob("model*.safetensors*"):
        f.unlink()
    write_evil(hf / "pytorch_model.bin", marker, around=torch.load(weights, weights_only=True))
    capsys.readouterr()
    assert cli_main(["import", str(hf), "--out", str(tmp_path / "imported.pth")]) == 2
    err = capsys.readouterr().err
    assert f"pytorch_model.bin: {REFUSED}" in err and "Traceback" not in err
    assert not (tmp_path / "imported.pth").exists()
