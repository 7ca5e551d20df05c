"""cuda:N -> NVML GPU: PCI order, CUDA_VISIBLE_DEVICES as indices, UUIDs and MIG instances, driven through the
real NvmlMonitor over a fake NVML."""
from __future__ import annotations

from minimind_tui.gpu.fake import GB, FakeGpu, FakeNvml
from minimind_tui.gpu.mapping import cuda_devices, free_gb_of, gpu_of, order_is_certain, visible_entries
from minimind_tui.gpu.nvml import NvmlMonitor


def reading(*gpus, **nvml_kw):
    return NvmlMonitor(nvml=FakeNvml(list(gpus), **nvml_kw), pid_exists=lambda pid: True).read()


def four_gpus():
    # NVML lists them out of PCI order here; the free memory tells them apart (10, 20, 30, 40 GB).
    return reading(*(FakeGpu(name="NVIDIA A100", used=(80 - free) * GB, total=80 * GB,
                             uuid=f"GPU-{tag}0000000-aaaa-bbbb-cccc-dddddddddddd", pci_bus_id=bus)
                     for free, tag, bus in [(30, "c", "00000000:41:00.0"), (10, "a", "00000000:01:00.0"),
                                            (40, "d", "00000000:81:00.0"), (20, "b", "00000000:21:00.0")]))


def frees(r, env):
    return [d.gpu.free_gb if d.gpu else None for d in cuda_devices(r, env)]


def test_the_monitor_reads_each_gpus_identity():
    r = reading(FakeGpu(), FakeGpu(mig=["MIG-11111111-2222-3333-4444-555555555555"]))
    assert [g.uuid for g in r.gpus] == ["GPU-00000000-1111-2222-3333-444444444444",
                                        "GPU-00000001-1111-2222-3333-444444444444"]
    assert [g.pci_bus_id for g in r.gpus] == ["00000000:10:00.0", "00000000:11:00.0"]
    assert r.gpus[0].mig_uuids == () and r.gpus[1].mig_uuids == ("MIG-11111111-2222-3333-4444-555555555555",)


def test_without_cuda_visible_devices_cuda_counts_in_pci_order():
    assert frees(four_gpus(), {}) == [10, 20, 30, 40]


def test_visible_indices_pick_and_reorder():
    r = four_gpus()
    assert frees(r, {"CUDA_VISIBLE_DEVICES": "3,1"}) == [40, 20]
    assert gpu_of(r, 0, {"CUDA_VISIBLE_DEVICES": "3,1"}).pci_bus_id == "00000000:81:00.0"
    assert gpu_of(r, 2, {"CUDA_VISIBLE_DEVICES": "3,1"}) is None  # no cuda:2 in that process


def test_visible_uuids_and_unique_prefixes():
    r = four_gpus()
    env = {"CUDA_VISIBLE_DEVICES": "GPU-d0000000-aaaa-bbbb-cccc-dddddddddddd,GPU-b"}
    assert frees(r, env) == [40, 20]
    assert [d.entry for d in cuda_devices(r, env)] == ["GPU-d0000000-aaaa-bbbb-cccc-dddddddddddd", "GPU-b"]


def test_cuda_stops_at_the_first_entry_it_cannot_use():
    r = four_gpus()
    assert frees(r, {"CUDA_VISIBLE_DEVICES": "2,-1,0"}) == [30]
    assert frees(r, {"CUDA_VISIBLE_DEVICES": "1,7,0"}) == [20]
    assert frees(r, {"CUDA_VISIBLE_DEVICES": "GPU-zzz,0"}) == []
    assert frees(r, {"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_entries(None) is None and visible_entries("0, 1,,2") == ["0", "1"]


def test_mig_instances_map_to_the_gpu_they_are_part_of():
    mig = "MIG-11111111-2222-3333-4444-555555555555"
    r = reading(FakeGpu(used=1 * GB), FakeGpu(used=2 * GB, mig=[mig]))
    for entry in (mig, "MIG-GPU-00000001-1111-2222-3333-444444444444/1/0"):
        (device,) = cuda_devices(r, {"CUDA_VISIBLE_DEVICES": entry})
        assert device.mig and device.gpu.uuid == "GPU-00000001-1111-2222-3333-444444444444"
    (unknown,) = cuda_devices(r, {"CUDA_VISIBLE_DEVICES": "MIG-99999999-0000-0000-0000-000000000000"})
    assert unknown.mig and unknown.gpu is None  # CUDA may well use it; which GPU it is on, NVML did not say


def test_uuids_nvml_cannot_read_are_unknown_not_guessed():
    r = reading(FakeGpu(), FakeGpu(), unsupported={"uuid"})
    (device,) = cuda_devices(r, {"CUDA_VISIBLE_DEVICES": "GPU-00000001"})
    assert device.gpu is None


def test_free_memory_of_the_selected_gpus_is_the_emptiest_ones():
    r = four_gpus()
    assert free_gb_of(r, [0]) == 10 and free_gb_of(r, [1, 2], {}) == 20
    assert free_gb_of(r, [0, 1], {"CUDA_VISIBLE_DEVICES": "3,2"}) == 30
    assert free_gb_of(r, [0, 5], {}) is None


def test_fastest_first_order_is_uncertain_only_for_unlike_gpus_named_by_index():
    alike = four_gpus()
    unlike = reading(FakeGpu(name="NVIDIA A100"), FakeGpu(name="NVIDIA T4"))
    assert order_is_certain(alike, {}) and order_is_certain(unlike, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert not order_is_certain(unlike, {}) and not order_is_certain(unlike, {"CUDA_VISIBLE_DEVICES": "1,0"})
    assert order_is_certain(unlike, {"CUDA_VISIBLE_DEVICES": "GPU-00000001"})
