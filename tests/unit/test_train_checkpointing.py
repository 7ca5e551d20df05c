"""Checkpoint folders: atomic, verified, pruned, and resumable past a broken newest one."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from minimind_tui.runs import layout
from minimind_tui.train import checkpointing
from model.checkpoint import CheckpointError


def _save(run_dir, step, value=1.0):
    weights = {"w": torch.full((4, 4), value)}
    state = {"step": step, "optimizer": {"state": {}, "param_groups": []}, "rng": [checkpointing.rng_state()]}
    return checkpointing.save_checkpoint(run_dir, step, weights, state, {"mode": "pretrain"})


def test_save_is_complete_and_loadable(tmp_path):
    folder = _save(tmp_path, 5)
    assert folder == layout.checkpoint_dir(tmp_path, 5)
    assert sorted(p.name for p in folder.iterdir()) == ["COMPLETE", "meta.json", "model.pth", "state.pt"]
    loaded = checkpointing.load_checkpoint(folder)
    assert loaded.state["step"] == 5 and torch.equal(loaded.weights["w"], torch.ones(4, 4))
    assert loaded.meta["step"] == 5 and set(loaded.meta["sha256"]) == {"model.pth", "state.pt"}
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary left behind


def test_interrupted_saves_are_never_picked_and_are_cleaned(tmp_path):
    _save(tmp_path, 1)
    # What a kill mid-save can leave: a hidden temporary folder, or (older layouts) a folder without COMPLETE.
    (tmp_path / "checkpoints" / ".step_00000002.tmp-123").mkdir()
    (tmp_path / "checkpoints" / ".step_00000002.tmp-123" / "model.pth").write_bytes(b"partial")
    half = layout.checkpoint_dir(tmp_path, 3)
    half.mkdir()
    (half / "model.pth").write_bytes(b"partial")
    assert [p.name for p in layout.complete_checkpoints(tmp_path)] == ["step_00000001"]
    assert checkpointing.load_latest(tmp_path).state["step"] == 1
    removed = checkpointing.clean_leftovers(tmp_path)
    assert len(removed) == 2 and sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000001"]


def test_keep_last(tmp_path):
    for step in (1, 2, 3, 4, 5):
        _save(tmp_path, step)
    checkpointing.prune(tmp_path, keep_last=2)
    assert [p.name for p in layout.complete_checkpoints(tmp_path)] == ["step_00000004", "step_00000005"]


@pytest.mark.parametrize("damage", ["truncate", "bitflip"])
def test_corrupt_newest_falls_back_with_a_message(tmp_path, damage):
    _save(tmp_path, 1, value=1.0)
    newest = _save(tmp_path, 2, value=2.0)
    path = newest / "model.pth"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) - 200] ^= 0x01  # inside the tensor bytes: torch.load alone would not notice
    path.write_bytes(bytes(data))
    messages = []
    loaded = checkpointing.load_latest(tmp_path, log=messages.append)
    assert loaded.state["step"] == 1 and torch.equal(loaded.weights["w"], torch.ones(4, 4))
    assert len(messages) == 1 and "step_00000002" in messages[0] and "model.pth" in messages[0]


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_state_needing_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _save(tmp_path, 1)
    with open(folder / "state.pt", "wb") as f:
        pickle.dump({"step": 1, "x": _Boom()}, f)
    meta = layout.read_json(folder / "meta.json")
    meta.pop("sha256")  # even without a checksum to catch it, loading must not run code
    (folder / "meta.json").write_text(__import__("json").dumps(meta))
    with pytest.raises(CheckpointError, match="state.pt"):
        checkpointing.load_checkpoint(folder)
    assert not (tmp_path / "PWNED").exists()


def test_save_into_a_read_only_folder_raises_and_keeps_the_previous(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    first = _save(tmp_path, 1)
    before = (first / "model.pth").read_bytes()
    os.chmod(tmp_path / "checkpoints", 0o500)
    try:
        with pytest.raises(OSError):
            _save(tmp_path, 2)
    finally:
        os.chmod(tmp_path / "checkpoints", 0o700)
    assert (first / "model.pth").read_bytes() == before


def test_resume_target_resolution(tmp_path):
    folder = _save(tmp_path, 3)
    assert checkpointing.resolve_resume(tmp_path) == (tmp_path, None)
    assert checkpointing.resolve_resume(folder) == (tmp_path, folder)
    assert checkpointing.resolve_resume(folder / "model.pth") == (tmp_path, folder)
    with pytest.raises(CheckpointError):
        checkpointing.resolve_resume(tmp_path / "nothing")


def test_export_weights_is_a_plain_state_dict(tmp_path):
    folder = _save(tmp_path, 1)
    checkpointing.export_weights(folder, tmp_path / "out" / "pretrain_4.pth")
    sd = torch.load(tmp_path / "out" / "pretrain_4.pth", weights_only=True)
    assert list(sd) == ["w"]


class _FakeCuda:
    """torch.cuda on a box with `count` GPUs, recording which generator states are read and written."""

    def __init__(self, monkeypatch, count: int):
        self.count = count
        self.set: list[tuple[int, int]] = []  # (device index, first byte of the state)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get_rng_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.get_rng_state(i) for i in range(count)])
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self.set_rng_state_all)

    def index(self, device) -> int:
        index = torch.device(device).index if not isinstance(device, int) else device
        if index is None:
            index = 0
        if index >= self.count:
            raise IndexError(f"device {index} of {self.count}")  # what torch raises for a missing GPU
        return index

    def get_rng_state(self, device="cuda"):
        return torch.full((4,), self.index(device) + 10, dtype=torch.uint8)

    def set_rng_state(self, state, device="cuda"):
        self.set.append((self.index(device), int(state[0])))

    def set_rng_state_all(self, states):
        for i, state in enumerate(states):
            self.set_rng_state(state, i)


def test_rng_state_holds_the_own_device_only_and_resumes_on_fewer_gpus(monkeypatch):
    saved_on_four = _FakeCuda(monkeypatch, 4)
    state = checkpointing.rng_state("cuda:2")
    assert torch.equal(state["cuda"], torch.full((4,), 12, dtype=torch.uint8))  # rank 2's own GPU, not all four
    one_gpu = _FakeCuda(monkeypatch, 1)
    checkpointing.set_rng_state(state, "cuda:0")
    assert one_gpu.set == [(0, 12)]
    assert saved_on_four.set == []


def test_old_checkpoints_with_one_state_per_gpu_still_resume(monkeypatch):
    old = {"torch": torch.get_rng_state(), "python": __import__("random").getstate(),
           "cuda": [torch.full((4,), 10 + i, dtype=torch.uint8) for i in range(4)]}  # saved on a 4-GPU box
    one_gpu = _FakeCuda(monkeypatch, 1)
    checkpointing.set_rng_state(old, "cuda:0")
    assert one_gpu.set == [(0, 10)]
    two_gpus = _FakeCuda(monkeypatch, 2)
    checkpointing.set_rng_state(old, "cuda:1")
    assert two_gpus.set == [(1, 11)]
    cpu_only = _FakeCuda(monkeypatch, 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpointing.set_rng_state(old, "cpu")  # a CUDA checkpoint resumed on the CPU: the CUDA part is ignored
    assert cpu_only.set == []


# ----- issue 15 #3: a step saved again replaces its folder, atomically -----
def _corrupt(folder):
    path = folder / "model.pth"
    path.write_bytes(bytes(path.stat().st_size))  # same size, all zeros


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_a_step_saved_again_replaces_the_folder_of_another_timeline(tmp_path, monkeypatch, swap):
    if swap == "two renames":  # a file system that cannot swap two names in one step
        monkeypatch.setattr(checkpointing, "exchange", lambda a, b: False)
    old = _save(tmp_path, 4, value=4.0)
    _corrupt(old)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpointing.load_checkpoint(old)
    again = _save(tmp_path, 4, value=-4.0)  # the same step, re-trained after resuming from an older one
    loaded = checkpointing.load_checkpoint(again)
    assert again == old and torch.equal(loaded.weights["w"], torch.full((4, 4), -4.0))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000004"]


def test_a_kill_between_the_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    """Where the two names cannot be swapped in one step, the old folder is moved aside first: a kill right
    then leaves no step_4, and the next start puts the old one back (the new one was never whole in place)."""
    old = _save(tmp_path, 4, value=4.0)
    monkeypatch.setattr(checkpointing, "exchange", lambda a, b: False)
    real_rename = os.rename

    def killed_after_moving_aside(src, dst):
        real_rename(src, dst)
        if str(dst).endswith(f"{checkpointing.OLD_SUFFIX}{os.getpid()}"):
            raise KeyboardInterrupt  # stands in for the kill: nothing after this runs
    monkeypatch.setattr(checkpointing.os, "rename", killed_after_moving_aside)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 4, value=-4.0)
    monkeypatch.setattr(checkpointing.os, "rename", real_rename)
    assert not old.exists() and layout.complete_checkpoints(tmp_path) == []
    checkpointing.clean_leftovers(tmp_path)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000004"]
    assert torch.equal(checkpointing.load_checkpoint(old).weights["w"], torch.full((4, 4), 4.0))


# ----- issue 15 #9: torch's zip writer on a full disk -----
def test_a_full_disk_under_torch_save_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    """torch.save into a file whose write() fails raises RuntimeError ("unexpected pos"), the OSError only in
    its context; the save must raise the OSError (reported as checkpoint_failed) instead."""
    import errno
    import io

    class FullDisk(io.FileIO):
        def write(self, data):
            if self.tell() + len(data) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    monkeypatch.setattr(checkpointing, "open", lambda path, mode: FullDisk(path, "w"), raising=False)
    with pytest.raises(OSError) as caught:
        _save(tmp_path, 1)
    assert caught.type is OSError and caught.value.errno == errno.ENOSPC and "model.pth" in str(caught.value)
    assert not (tmp_path / "checkpoints" / "step_00000001").exists()
    assert not list((tmp_path / "checkpoints").iterdir())


# ----- issue 15 #2: --init and chat --ckpt verify what they take -----
def test_verified_weights_refuse_a_named_checkpoint_and_fall_back_in_a_run(tmp_path):
    _save(tmp_path, 2, value=2.0)
    newest = _save(tmp_path, 4, value=4.0)
    assert checkpointing.verified_weights(tmp_path) == newest / "model.pth"
    _corrupt(newest)
    for named in (newest, newest / "model.pth"):
        with pytest.raises(CheckpointError, match=f"{newest / 'model.pth'}: checksum mismatch"):
            checkpointing.verified_weights(named)
    said = []
    assert checkpointing.verified_weights(tmp_path, log=said.append) == layout.checkpoint_dir(tmp_path, 2) / "model.pth"
    assert len(said) == 1 and "falling back" in said[0] and str(newest / "model.pth") in said[0]
    plain = tmp_path / "pretrain_512.pth"
    torch.save({"w": torch.zeros(1)}, plain)
    assert checkpointing.verified_weights(plain) is None  # not ours: taken as it is
