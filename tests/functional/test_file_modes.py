"""Files people share follow the umask (weights in out/, their exports, the demo data); run folders stay private."""
from __future__ import annotations

import os
import stat

import pytest
from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.cli import main


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_shared_files_follow_the_umask_and_run_folders_stay_private(tmp_path, monkeypatch, umask_022):
    from minimind_tui.demo import demo_tokenizer_dir

    (tmp_path / "dataset").mkdir()
    pre = write_demo_corpus(tmp_path / "dataset")["pretrain"]  # written as the demo data is (demo.write_jsonl)
    assert mode(pre) == 0o644
    assert train_here(tmp_path, "pretrain", "--data_path", str(pre), *TINY, "--batch_size", "32",
                      "--tokenizer", str(demo_tokenizer_dir()), monkeypatch=monkeypatch) == 0
    assert mode(tmp_path / "out") == 0o755
    assert mode(tmp_path / "out" / "pretrain_32.pth") == 0o644
    assert mode(tmp_path / "out" / "pretrain_32.meta.json") == 0o644
    (run,) = (tmp_path / "runs").iterdir()
    assert mode(run) == 0o700  # checkpoints, logs and settings inside are the user's alone
    assert main(["export", str(tmp_path / "out" / "pretrain_32.pth"), "--out", str(tmp_path / "hf"),
                 "--n_heads", "4"]) == 0
    assert mode(tmp_path / "hf") == 0o755 and mode(tmp_path / "hf" / "model.safetensors") == 0o644
    assert os.umask(0o022) == 0o022  # the trainer left the process's umask alone
