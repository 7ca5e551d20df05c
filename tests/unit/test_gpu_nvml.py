"""NvmlMonitor driven by a fake pynvml in every failure mode: each failure is N/A for its cell only, and no
failure raises."""
from __future__ import annotations

import os

import pytest

from minimind_tui.gpu.fake import GB, FakeGpu, FakeNvml
from minimind_tui.gpu.nvml import NvmlMonitor


def read(nvml, pids=()):
    return NvmlMonitor(nvml=nvml, pid_exists=lambda pid: pid < 4_000_000).read(pids)


def test_healthy_gpu_reports_every_field_and_the_trainers_memory():
    gpu = FakeGpu(processes=[(111, 12 * GB), (222, 3 * GB), (333, 1 * GB)])
    r = read(FakeNvml([gpu, FakeGpu(name="NVIDIA A100-SXM4-40GB", used=0, total=40 * GB)]), pids={111, 333})
    assert r.unavailable is None and r.driver == "550.54.15" and len(r.gpus) == 2
    g = r.gpus[0]
    assert (g.name, g.mem_used_gb, g.mem_total_gb) == ("NVIDIA H100 80GB HBM3", 14.0, 80.0)
    assert (g.util_pct, g.temp_c, g.power_w, g.power_limit_w) == (97.0, 61.0, 412.0, 700.0)
    assert g.trainer_mem_gb == 13.0  # 12 + 1: only the trainer's pids
    assert r.gpus[1].trainer_mem_gb == 0.0
    assert r.free_gb(1) == 66.0 and r.free_gb(2) == 40.0


@pytest.mark.parametrize("mode, reason", [
    ("library_missing", "NVML Shared Library Not Found"),
    ("driver_not_loaded", "Driver Not Loaded"),
])
def test_no_nvml_is_one_line_with_nvmls_reason(mode, reason):
    r = read(FakeNvml(mode=mode))
    assert r.gpus == () and r.unavailable.startswith("no GPU information") and reason in r.unavailable


def test_no_gpu():
    assert read(FakeNvml(mode="no_gpu")).unavailable == "no GPU found by NVML"


def test_missing_package_is_a_reading_not_a_crash(monkeypatch):
    import minimind_tui.gpu.nvml as nvml_mod

    def missing():
        raise ImportError("No module named 'pynvml'")
    monkeypatch.setattr(nvml_mod, "_load_pynvml", missing)
    assert "nvidia-ml-py is not installed" in NvmlMonitor().read().unavailable


def test_a_lost_gpu_fails_alone():
    r = read(FakeNvml([FakeGpu(), FakeGpu()], mode="gpu_lost"))
    assert r.gpus[0].error is None and r.gpus[0].mem_used_gb == 14.0
    assert r.gpus[1].error == "GPU is lost" and r.gpus[1].mem_used_gb is None


def test_unsupported_fields_are_none_and_the_rest_is_read():
    r = read(FakeNvml(mode="not_supported"), pids={1})
    g = r.gpus[0]
    assert (g.temp_c, g.power_w, g.power_limit_w, g.util_pct, g.trainer_mem_gb) == (None,) * 5
    assert (g.name, g.mem_used_gb) == ("NVIDIA H100 80GB HBM3", 14.0)


def test_each_field_can_fail_alone():
    for field, attr in [("temp", "temp_c"), ("power", "power_w"), ("util", "util_pct"), ("mem", "mem_used_gb"),
                        ("name", "name")]:
        g = read(FakeNvml(unsupported={field})).gpus[0]
        assert getattr(g, attr) is None, field
        others = {"temp_c", "util_pct", "mem_used_gb", "name", "power_w"} - {attr}
        assert all(getattr(g, o) is not None for o in others), field


def test_no_permission_to_see_processes_is_na_for_the_trainer_cell_only():
    g = read(FakeNvml([FakeGpu(processes=[(111, GB)])], mode="no_permission"), pids={111}).gpus[0]
    assert g.trainer_mem_gb is None and g.mem_used_gb == 14.0


def test_container_pid_namespace_is_na_not_zero():
    g = read(FakeNvml([FakeGpu(processes=[(111, GB)])], mode="container_pids"), pids={111}).gpus[0]
    assert g.trainer_mem_gb is None


def test_hidden_per_process_memory_is_na():
    g = read(FakeNvml([FakeGpu(processes=[(111, None)])]), pids={111}).gpus[0]
    assert g.trainer_mem_gb is None


def test_init_happens_once_and_close_shuts_down():
    nv = FakeNvml()
    mon = NvmlMonitor(nvml=nv)
    mon.read()
    mon.read()
    assert nv.init_calls == 1
    mon.close()
    mon.read()
    assert nv.init_calls == 2


def test_real_pynvml_on_this_machine_never_raises():
    r = NvmlMonitor().read({os.getpid()})
    assert r.unavailable or r.gpus  # either a reason or GPUs, never an exception
