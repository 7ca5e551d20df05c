"""`minimind-tui doctor`: every branch driven without a GPU (fake NVML, a monkeypatched torch.cuda), and the
real thing on this CPU machine."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from minimind_tui import doctor
from minimind_tui.cli import main as cli_main
from minimind_tui.doctor import FAIL, OK, WARN, check_driver, check_gpus, check_nccl, run_checks, worst
from minimind_tui.gpu.fake import GB, FakeGpu, FakeNvml
from minimind_tui.gpu.nvml import NvmlMonitor


def nvml_view(*gpus, driver="570.86.15", cuda_version=12080):
    monitor = NvmlMonitor(nvml=FakeNvml(list(gpus), driver=driver, cuda_version=cuda_version),
                          pid_exists=lambda pid: True)
    return monitor.read(), monitor.cuda_driver_version()


def gpu_box(monkeypatch, devices, build="12.8", available=True, warning=None, nccl=True):
    """torch as it looks on a GPU box: `devices` are (name, GiB, (major, minor), uuid) in cuda:N order."""
    import torch

    def is_available():
        if warning:
            import warnings
            warnings.warn(warning, stacklevel=2)
        return available
    monkeypatch.setattr(torch.version, "cuda", build)
    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(devices))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(
        name=devices[i][0], total_memory=devices[i][1] * GB, major=devices[i][2][0], minor=devices[i][2][1],
        uuid=devices[i][3]))
    monkeypatch.setattr(torch.backends.cuda, "is_flash_attention_available", lambda: True, raising=False)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: nccl)
    monkeypatch.setattr(torch.cuda.nccl, "version", lambda: (2, 21, 5))
    return torch


def test_this_cpu_machine_passes_and_says_there_is_no_gpu(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checks = run_checks(tmp_path, nvml=FakeNvml(mode="library_missing"), env={})
    by_area = {c.area: c for c in checks}
    assert worst(checks) == WARN
    assert by_area["driver"].status == WARN and "no NVIDIA GPU" in by_area["driver"].message
    assert "training runs on the CPU" in by_area["driver"].message
    assert {"python", "torch", "nccl", "writable", "token cache", "disk", "ram"} <= set(by_area)
    assert by_area["token cache"].data["path"]  # where tokenised data goes


def test_gpus_are_matched_to_nvml_by_uuid_not_by_number(monkeypatch):
    # NVML's GPU 0 is cuda:1 here (a different PCI order, or CUDA_VISIBLE_DEVICES=1,0).
    reading, cuda = nvml_view(FakeGpu(name="NVIDIA A100", used=1 * GB, total=80 * GB, uuid="GPU-aaaa"),
                              FakeGpu(name="NVIDIA A100", used=2 * GB, total=80 * GB, uuid="GPU-bbbb"))
    torch = gpu_box(monkeypatch, [("NVIDIA A100", 80, (8, 0), "bbbb"), ("NVIDIA A100", 80, (8, 0), "aaaa")])
    checks = check_gpus(torch, reading, {"CUDA_VISIBLE_DEVICES": "1,0"})
    visible, cuda0, cuda1 = checks
    assert visible.message == "CUDA_VISIBLE_DEVICES=1,0"
    assert (cuda0.area, cuda0.data["nvml_index"], cuda0.data["used_gb"]) == ("cuda:0", 1, 2.0)
    assert (cuda1.data["nvml_index"], cuda1.data["used_gb"]) == (0, 1.0)
    assert cuda0.status == OK and cuda0.data["bf16"] and cuda0.data["flash_attention"]
    assert "NVML GPU 1" in cuda0.message and "compute 8.0" in cuda0.message


def test_an_older_or_busy_gpu_is_a_warning_with_advice(monkeypatch):
    reading, _ = nvml_view(FakeGpu(name="Tesla V100", used=1 * GB, total=16 * GB, uuid="GPU-v"),
                           FakeGpu(name="NVIDIA L4", used=20 * GB, total=24 * GB, uuid="GPU-l"))
    torch = gpu_box(monkeypatch, [("Tesla V100", 16, (7, 0), "GPU-v"), ("NVIDIA L4", 24, (8, 9), "GPU-l")])
    v100, l4 = check_gpus(torch, reading, {})
    assert v100.status == WARN and not v100.data["bf16"] and "--dtype float16" in v100.advice
    assert l4.status == WARN and "20.0 GB already in use" in l4.advice


def test_driver_and_torch_build_agree(monkeypatch):
    reading, cuda = nvml_view(FakeGpu(), driver="550.54.15", cuda_version=12040)
    torch = gpu_box(monkeypatch, [("NVIDIA H100", 80, (9, 0), None)], build="12.6")
    check = check_driver(torch, reading, cuda)
    assert check.status == OK and "driver 550.54.15 supports CUDA 12.4" in check.message
    assert "minor version compatibility" in check.message


def test_a_torch_built_for_a_newer_cuda_than_the_driver_fails_with_the_build_to_install(monkeypatch):
    reading, cuda = nvml_view(FakeGpu(), driver="535.104.05", cuda_version=12020)
    torch = gpu_box(monkeypatch, [("NVIDIA A100", 80, (8, 0), None)], build="13.0", available=False)
    check = check_driver(torch, reading, cuda)
    assert check.status == FAIL and "needs a newer driver" in check.message
    assert "scripts/install.sh" in check.advice and "cu124" in check.advice


def test_a_cpu_torch_on_a_gpu_box_fails(monkeypatch):
    reading, cuda = nvml_view(FakeGpu(), FakeGpu())
    torch = gpu_box(monkeypatch, [], build=None, available=False)
    check = check_driver(torch, reading, cuda)
    assert check.status == FAIL and "CPU-only build: 2 GPU(s) unused" in check.message and "cu128" in check.advice
    lines = check_gpus(torch, reading, {})
    assert [c.area for c in lines] == ["GPU 0", "GPU 1"] and all(c.status == WARN for c in lines)


def test_torch_refusing_the_gpu_says_why(monkeypatch):
    reading, cuda = nvml_view(FakeGpu())
    torch = gpu_box(monkeypatch, [("x", 1, (8, 0), None)], available=False,
                    warning="CUDA initialization: The NVIDIA driver on your system is too old")
    check = check_driver(torch, reading, cuda)
    assert check.status == FAIL and "driver on your system is too old" in check.message


def test_too_old_a_driver_names_the_upgrade(monkeypatch):
    reading, cuda = nvml_view(FakeGpu(), driver="470.82.01", cuda_version=11040)
    torch = gpu_box(monkeypatch, [("x", 1, (8, 0), None)], build="12.6", available=False)
    check = check_driver(torch, reading, cuda)
    assert check.status == FAIL and "upgrade the NVIDIA driver" in check.advice


def test_nccl(monkeypatch):
    torch = gpu_box(monkeypatch, [("a", 1, (8, 0), None), ("b", 1, (8, 0), None)])
    assert check_nccl(torch).message == "NCCL 2.21.5 for 2 GPU(s)"
    torch = gpu_box(monkeypatch, [("a", 1, (8, 0), None), ("b", 1, (8, 0), None)], nccl=False)
    assert check_nccl(torch).status == FAIL


def test_unwritable_caches_and_a_full_disk_fail(tmp_path, monkeypatch):
    import os
    from collections import namedtuple

    token_cache = doctor.cache_locations(tmp_path)["token cache"]
    real_access = os.access
    monkeypatch.setattr(doctor.os, "access", lambda p, mode: False if str(token_cache).startswith(str(p)) and
                        str(p) != "/" else real_access(p, mode))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(100 * GB, 99.5 * GB, 0.5 * GB))
    checks = doctor.check_storage(tmp_path)
    writable = next(c for c in checks if c.area == "writable")
    assert writable.status == FAIL and "token cache" in writable.message and "MINIMIND_CACHE" in writable.advice
    assert all(c.status == FAIL for c in checks if c.area == "disk")


def test_cli_json_and_exit_status(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(doctor, "NvmlMonitor", lambda nvml=None: NvmlMonitor(nvml=FakeNvml(mode="no_gpu")))
    assert cli_main(["--root", str(tmp_path), "doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == WARN and {c["status"] for c in report["checks"]} <= {OK, WARN}
    # A FAIL (here: a CPU-only torch on a box with GPUs) makes the exit status non-zero.
    monkeypatch.setattr(doctor, "NvmlMonitor", lambda nvml=None: NvmlMonitor(nvml=FakeNvml([FakeGpu()])))
    monkeypatch.setattr(torch.version, "cuda", None)
    assert cli_main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  driver" in out and "-> run scripts/install.sh" in out


@pytest.mark.slow
def test_smoke_trains_saves_and_generates_on_the_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["doctor", "--smoke", "--seconds", "2", "--json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    (smoke,) = report["smoke"]
    assert smoke["device"] == "cpu" and smoke["status"] == OK, smoke
    assert smoke["steps"] >= 1 and smoke["tokens_per_s"] > 0 and smoke["ckpt_seconds"] is not None
    assert smoke["gen_tokens_per_s"] > 0 and smoke["estimate_total_gb"] > 0 and smoke["rss_gb"] > 0
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_smoke_on_a_device_that_cannot_train_fails(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.chdir(tmp_path)
    assert cli_main(["doctor", "--smoke", "--device", "cuda:0", "--seconds", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  smoke cuda:0" in out and "no CUDA GPU is visible" in out
