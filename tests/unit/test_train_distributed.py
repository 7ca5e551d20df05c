"""torchrun / device set-up without GPUs: torch.cuda and the process-group calls are replaced by fakes."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from minimind_tui.errors import UserError
from minimind_tui.train import distributed


@pytest.fixture
def gpus(monkeypatch):
    """A box with N visible GPUs; records set_device and process-group calls."""
    calls: dict[str, list] = {"set_device": [], "init_process_group": [], "new_group": []}

    def visible(n: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return calls
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls["set_device"].append(str(d)))
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: calls["init_process_group"].append((a, kw)))
    monkeypatch.setattr(dist, "new_group", lambda *a, **kw: calls["new_group"].append((a, kw)) or "gloo-group")
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return visible


def torchrun_env(monkeypatch, rank: int, local_rank: int, world: int, local_world: int):
    for k, v in dict(RANK=rank, LOCAL_RANK=local_rank, WORLD_SIZE=world, LOCAL_WORLD_SIZE=local_world).items():
        monkeypatch.setenv(k, str(v))


def test_more_ranks_than_gpus_is_one_line_naming_the_counts(gpus, monkeypatch):
    calls = gpus(2)
    torchrun_env(monkeypatch, rank=2, local_rank=2, world=4, local_world=4)
    with pytest.raises(UserError) as e:
        distributed.init("cuda")
    text = str(e.value)
    assert "4 processes per node" in text and "local rank 2 sees 2 GPU(s)" in text and "--nproc_per_node 2" in text
    assert "\n" not in text and calls["init_process_group"] == []  # refused before joining anything


def test_a_cuda_visible_devices_per_rank_is_named(gpus, monkeypatch):
    gpus(1)
    torchrun_env(monkeypatch, rank=1, local_rank=1, world=2, local_world=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with pytest.raises(UserError, match=r"sees 1 GPU\(s\) \(CUDA_VISIBLE_DEVICES=1\).*same CUDA_VISIBLE_DEVICES"):
        distributed.init("cuda")


def test_each_rank_uses_its_local_gpu(gpus, monkeypatch):
    calls = gpus(2)
    torchrun_env(monkeypatch, rank=3, local_rank=1, world=4, local_world=2)
    info, device = distributed.init("cuda")
    assert device == "cuda:1" and calls["set_device"] == ["cuda:1"]
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size) == (3, 1, 4, 2)


def test_single_process_sets_the_device_it_was_given(gpus):
    calls = gpus(2)
    info, device = distributed.init("cuda:1")
    assert device == "cuda:1" and calls["set_device"] == ["1"] and not info.enabled
    assert distributed.init("cuda")[1] == "cuda:0"
    with pytest.raises(UserError, match=r"--device cuda:2: this process sees 2 GPU\(s\), numbered cuda:0 to cuda:1"):
        distributed.init("cuda:2")
    calls["set_device"].clear()
    assert distributed.init("cpu")[1] == "cpu" and calls["set_device"] == []


def test_nccl_has_a_short_timeout_and_its_device_and_waits_go_over_gloo(gpus, monkeypatch):
    from datetime import timedelta
    calls = gpus(2)
    torchrun_env(monkeypatch, rank=1, local_rank=1, world=2, local_world=2)
    info, _ = distributed.init("cuda")
    (args, kw), = calls["init_process_group"]
    assert args == ("nccl",) and kw["device_id"] == torch.device("cuda:1") and kw["timeout"] <= timedelta(minutes=10)
    (_, group_kw), = calls["new_group"]
    assert group_kw["backend"] == "gloo" and group_kw["timeout"] >= timedelta(minutes=60)
    assert info.control == "gloo-group"
    # Object collectives, host-side sums and barriers all name the Gloo group.
    used = []
    monkeypatch.setattr(dist, "all_gather_object", lambda out, obj, group=None: used.append(("gather", group)))
    monkeypatch.setattr(dist, "broadcast_object_list", lambda box, src, group=None: used.append(("bcast", group)))
    monkeypatch.setattr(dist, "barrier", lambda group=None: used.append(("barrier", group)))
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None, group=None: used.append(("reduce", group)))
    distributed.gather_objects(1, info)
    distributed.broadcast_object(1, info)
    distributed.barrier(info)
    assert distributed.host_sum([1.0, 2.0], info) == [1.0, 2.0]
    assert distributed.host_any([True, False], info) == [True, False]
    assert used == [(kind, "gloo-group") for kind in ("gather", "bcast", "barrier", "reduce", "reduce")]
