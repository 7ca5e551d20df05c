"""Choosing the training device: a GPU that PyTorch cannot use is an error, not a silent CPU run."""
from __future__ import annotations

import pytest
import torch

from minimind_tui.errors import UserError
from minimind_tui.train import devices


@pytest.fixture
def box(monkeypatch):
    """A machine whose driver lists `gpus` NVIDIA GPUs while torch sees CUDA or not."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def make(gpus: int, torch_sees: bool, problem: str = "The NVIDIA driver on your system is too old"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_sees)
        monkeypatch.setattr(devices, "nvidia_gpus", lambda: gpus)
        monkeypatch.setattr(devices, "cuda_problem", lambda: problem)
    return make


def test_a_gpu_torch_cannot_use_is_refused_without_device_cpu(box):
    box(gpus=2, torch_sees=False)
    with pytest.raises(UserError) as e:
        devices.choose_device(None)
    text = str(e.value)
    assert "2 NVIDIA GPU(s) but PyTorch cannot use them (The NVIDIA driver on your system is too old)" in text
    assert "--device cpu" in text and "\n" not in text
    with pytest.raises(UserError, match=r"--device cuda:0: the machine has 2 NVIDIA GPU\(s\).*use --device cpu"):
        devices.choose_device("cuda:0")
    assert devices.choose_device("cpu") == "cpu"  # asked for: fine


def test_no_gpu_at_all_trains_on_the_cpu_and_a_usable_one_is_taken(box, monkeypatch):
    box(gpus=0, torch_sees=False)
    assert devices.choose_device(None) == "cpu"
    with pytest.raises(UserError, match="no CUDA GPU is visible to PyTorch here; use --device cpu"):
        devices.choose_device("cuda")
    box(gpus=1, torch_sees=True)
    assert devices.choose_device(None) == "cuda:0" and devices.choose_device("cuda:1") == "cuda:1"
    box(gpus=1, torch_sees=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden on purpose
    assert devices.choose_device(None) == "cpu"


def test_the_reason_is_torchs_own_words(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")

    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 11040).\nPlease update")
    monkeypatch.setattr(torch.cuda, "init", init)
    assert devices.cuda_problem() == "The NVIDIA driver on your system is too old (found version 11040)."
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "built without CUDA" in devices.cuda_problem()


def test_the_trainer_refuses_before_making_a_run_folder(box, tmp_path, monkeypatch, capsys):
    from testkit import TINY, train_here, write_demo_corpus
    data = write_demo_corpus(tmp_path)
    box(gpus=1, torch_sees=False)
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, monkeypatch=monkeypatch) == 2
    assert "PyTorch cannot use them" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_gpus_before_ampere_default_to_float16_with_the_scaler(monkeypatch):
    capability = {"cuda:0": (7, 5), "cuda:1": (8, 0), "cuda:2": (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability[device])
    assert devices.default_dtype("cuda:0") == "float16"  # T4: bfloat16 would be emulated
    assert devices.default_dtype("cuda:1") == "bfloat16" and devices.default_dtype("cuda:2") == "bfloat16"
    assert devices.default_dtype("cpu") == "bfloat16"  # recorded; the CPU trains in float32 anyway
    from minimind_tui.train.args import resolve
    assert resolve("pretrain", {})["dtype"] is None  # decided once the device is known
    assert resolve("pretrain", {"dtype": "bfloat16"})["dtype"] == "bfloat16"


def test_float32_on_a_gpu_uses_tf32_matmuls():
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        devices.configure_precision("cuda:0", "bfloat16")
        devices.configure_precision("cpu", "float32")
        assert torch.get_float32_matmul_precision() == "highest"
        devices.configure_precision("cuda:0", "float32")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
