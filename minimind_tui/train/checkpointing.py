"""Checkpoint folders: written atomically, verified on load, the last K kept.

A save writes model.pth, state.pt and meta.json (with SHA-256 sums of the other two) into a hidden
temporary folder, fsyncs each, writes COMPLETE last, then renames the folder into place. A kill at any
moment leaves either the old set of folders or the new one plus a hidden leftover, which the next start
removes. Resume walks the complete folders newest first and falls back, with a message, past any that
fails its checksum or cannot be read.

The training thread only snapshots weights and optimizer state into CPU memory; BackgroundWriter then
writes, fsyncs and hashes on a side thread while training goes on, one save at a time (joined before
the next save and at exit), so the folder-level atomicity above is unchanged.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from dataset.atomic import copy_atomic, exchange, fsync_dir
from minimind_tui.runs import layout
from model.checkpoint import CheckpointError, load_state_dict, save_to, sha256

TMP_PREFIX = ".step_"
T = TypeVar("T")
OLD_SUFFIX = ".old-"  # a complete folder moved aside while its step is saved again (_replace_folder)


def _write_file(path: Path, write) -> None:
    try:
        with open(path, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.filename is not None:
            raise
        # A refused write() names no file; the checkpoint_failed report should say which disk.
        raise OSError(e.errno, e.strerror, str(path)) from None


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """fp32 CPU copy of the weights with MiniMind's keys; tied tensors stay shared (saved once)."""
    copies: dict[tuple, torch.Tensor] = {}
    out = {}
    for k, v in model.state_dict().items():
        key = (v.data_ptr(), v.dtype, tuple(v.shape))
        if key not in copies:  # a copy even on the CPU: training goes on while it is written
            copies[key] = v.detach().to("cpu", torch.float32, copy=True)
        out[k] = copies[key]
    return out


def cpu_copy(obj):
    """`obj` (an optimizer's state_dict) with every tensor copied to the CPU, sharing nothing with the live
    state: what a background save writes while the next steps update the original."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Runs checkpoint writes on a side thread, one at a time.

    `submit(write)` first waits for the previous write, so at most one save is ever in flight and the
    keep-last pruning sees finished folders only. `write()` reports its own disk errors (the trainer's
    `checkpoint_failed` event) and returns False for them; anything else it raises is raised again by
    `wait()` in the training thread, as a synchronous save would have."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._ok = True
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], bool]) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(write,), name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _run(self, write: Callable[[], bool]) -> None:
        try:
            self._ok = write()
        except BaseException as e:
            self._ok, self._error = False, e

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> bool:
        """Join the write in flight, if any; True when the last write succeeded (or there was none)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._ok


def rng_state(device: str = "cpu") -> dict:
    """This process's random state. On CUDA only its own device's generator: a resume on a box with
    fewer GPUs (or a narrower CUDA_VISIBLE_DEVICES) could not restore one state per GPU of the old box."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: str = "cpu") -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    cuda = state.get("cuda")
    if cuda is None or not str(device).startswith("cuda") or not torch.cuda.is_available():
        return
    if isinstance(cuda, (list, tuple)):  # older checkpoints: one state per GPU the saving process could see
        index = torch.device(device).index or 0
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda, device)


def save_checkpoint(run_dir: Path, step: int, weights: dict, train_state: dict, meta: dict) -> Path:
    """Write checkpoints/step_XXXXXXXX atomically; returns the folder. Raises OSError on a disk problem.

    A folder already there for this step is replaced, never kept: after a resume from an older checkpoint
    (the newest failed its checksums, or `--resume` named an older step) it belongs to another timeline, and
    may be the very folder that failed (the trainer saves a step once per timeline: loop.last_saved_step)."""
    final = layout.checkpoint_dir(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{step:08d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        # save_to, not torch.save: a full disk is then an OSError (checkpoint_failed), not torch's RuntimeError.
        _write_file(tmp / layout.MODEL_FILE, lambda f: save_to(weights, f))
        _write_file(tmp / layout.STATE_FILE, lambda f: save_to(train_state, f))
        meta = {**meta, "step": step, "saved_at": time.time(),
                "sha256": {name: sha256(tmp / name) for name in (layout.MODEL_FILE, layout.STATE_FILE)}}
        _write_file(tmp / layout.META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
        _write_file(tmp / layout.COMPLETE, lambda f: f.write(b"ok\n"))  # last: marks the set as whole
        fsync_dir(tmp)
        if os.path.lexists(final):
            _replace_folder(tmp, final)
        else:
            os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _replace_folder(new: Path, final: Path) -> None:
    """Put the finished folder `new` in the place of the folder `final`, so that a reader or a kill sees one
    or the other, whole. Where the kernel swaps two names in one step (renameat2's RENAME_EXCHANGE: ext4,
    XFS, btrfs, tmpfs), the old folder lands at `new`'s hidden name and is removed (a kill before that leaves
    it hidden: the next start removes it). Elsewhere the old folder is first renamed aside (.step_N.old-PID,
    hidden) and `new` renamed in: a kill between the two renames leaves no step_N, and the next start
    puts the old one back (clean_leftovers)."""
    if exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)
        return
    aside = final.with_name(f"{TMP_PREFIX}{final.name[len('step_'):]}{OLD_SUFFIX}{os.getpid()}")
    os.rename(final, aside)
    os.rename(new, final)
    shutil.rmtree(aside, ignore_errors=True)


def export_weights(checkpoint: Path, target: Path) -> None:
    """Publish a checkpoint's model.pth as MiniMind's out/<name>.pth, atomically: a copy (or a reflink), never
    a hard link, so whatever later writes into the exported file in place leaves the checkpoint intact."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(Path(checkpoint) / layout.MODEL_FILE, target)


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    done = layout.complete_checkpoints(run_dir)
    removed = done[:-keep_last] if keep_last > 0 else []
    for path in removed:
        # Renamed out of sight first, so a kill mid-delete never leaves a listed folder with files missing.
        hidden = path.with_name(f"{TMP_PREFIX}{path.name[len('step_'):]}.del-{os.getpid()}")
        try:
            os.rename(path, hidden)
        except OSError:
            continue
        shutil.rmtree(hidden, ignore_errors=True)
    return removed


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Remove hidden temporary folders and step folders without COMPLETE (interrupted saves). A complete
    folder moved aside by a save that was killed before it put the new one in place goes back first."""
    root = Path(run_dir) / layout.CHECKPOINTS
    if not root.is_dir():
        return []
    _put_back_moved_aside(root)

    def interrupted(p: Path) -> bool:
        return p.name.startswith(TMP_PREFIX) or (p.name.startswith("step_") and not (p / layout.COMPLETE).is_file())

    junk = [p for p in root.iterdir() if p.is_dir() and interrupted(p)]
    for p in junk:
        shutil.rmtree(p, ignore_errors=True)
    return junk


def _put_back_moved_aside(root: Path) -> None:
    for aside in root.glob(f"{TMP_PREFIX}*{OLD_SUFFIX}*"):
        final = root / f"step_{aside.name[len(TMP_PREFIX):].split(OLD_SUFFIX)[0]}"
        if (aside / layout.COMPLETE).is_file() and not os.path.lexists(final):
            os.rename(aside, final)


@dataclass
class Loaded:
    path: Path
    weights: dict
    state: dict
    meta: dict


def verify(folder: Path) -> dict:
    """Check a checkpoint folder as resume does before using it: COMPLETE, a meta.json object, and each file
    against the SHA-256 meta.json recorded. Returns meta.json; raises CheckpointError naming the file at fault."""
    folder = Path(folder)
    if not (folder / layout.COMPLETE).is_file():
        raise CheckpointError(f"{folder}: incomplete checkpoint (no {layout.COMPLETE} marker)")
    meta = layout.read_json(folder / layout.META_FILE)
    if meta is None:
        raise CheckpointError(f"{folder / layout.META_FILE}: missing, not valid JSON or not a JSON object")
    if not isinstance(meta.get("sha256") or {}, dict):
        raise CheckpointError(f"{folder / layout.META_FILE}: damaged (sha256 is not a table of checksums)")
    for name, digest in (meta.get("sha256") or {}).items():
        if not (folder / name).is_file() or sha256(folder / name) != digest:
            raise CheckpointError(f"{folder / name}: checksum mismatch (truncated or corrupted on disk)")
    return meta


def load_checkpoint(folder: Path) -> Loaded:
    folder = Path(folder)
    meta = verify(folder)
    weights = load_state_dict(folder / layout.MODEL_FILE)
    try:
        state = torch.load(folder / layout.STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises several types; all mean "not usable"
        raise CheckpointError(f"{folder / layout.STATE_FILE}: not a loadable training state "
                              f"({str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{folder / layout.STATE_FILE}: not a training state")
    return Loaded(folder, weights, state, meta)


def _newest_usable(run_dir: Path, use: Callable[[Path], T], log) -> T:
    """`use(folder)` of the newest complete checkpoint it accepts, falling back past those it refuses
    (CheckpointError), each said with `log`."""
    candidates = list(reversed(layout.complete_checkpoints(run_dir)))
    if not candidates:
        raise CheckpointError(f"{run_dir}: no complete checkpoint to resume from")
    problems = []
    for folder in candidates:
        try:
            return use(folder)
        except CheckpointError as e:
            problems.append(str(e))
            log(f"checkpoint unusable, falling back to the previous one: {e}")
    raise CheckpointError(f"{run_dir}: no usable checkpoint ({'; '.join(problems)})")


def load_latest(run_dir: Path, log=print) -> Loaded:
    """The newest checkpoint that loads, falling back past broken ones with a message."""
    return _newest_usable(run_dir, load_checkpoint, log)


def verified_weights(init: Path | str, log=print) -> Path | None:
    """The model.pth that --init (or chat --ckpt) takes from one of our folders, checked against meta.json's
    checksums as resume checks it. A checkpoint folder, or its model.pth, that fails is refused with the
    file named: the user chose those very weights. A run folder falls back past failing checkpoints to the
    newest that passes, saying so, as `--resume` of the same folder does: the user asked for the run's
    latest good weights. None when `init` is neither (a MiniMind .pth elsewhere: taken as it is)."""
    init = Path(init)
    folder = init.parent if init.name == layout.MODEL_FILE and init.is_file() else init
    if (folder / layout.COMPLETE).is_file():
        verify(folder)
        return folder / layout.MODEL_FILE
    if init.is_dir() and not (init / layout.MODEL_FILE).exists() and layout.complete_checkpoints(init):
        return _newest_usable(init, _verified_model_file, log)
    return None


def _verified_model_file(checkpoint: Path) -> Path:
    verify(checkpoint)
    return checkpoint / layout.MODEL_FILE


def resolve_resume(target: Path) -> tuple[Path, Path | None]:
    """--resume names a run folder or one checkpoint folder: returns (run_dir, checkpoint folder or None)."""
    target = Path(target)
    if (target / layout.COMPLETE).exists() or target.parent.name == layout.CHECKPOINTS:
        return target.parent.parent, target
    if target.is_file() and target.parent.parent.name == layout.CHECKPOINTS:
        return target.parent.parent.parent, target.parent
    if target.is_dir():
        return target, None
    raise CheckpointError(f"{target}: nothing to resume here; pass a run folder (runs/<run-id>) or one of its "
                          f"checkpoints/step_* folders")
