"""Writing files so that nobody ever sees half of one, and nobody can redirect the write.

Every file the project replaces (weights, checkpoints' exports, config.json, sidecars, caches, pid files)
is written here: into a temporary file in the same folder, then renamed over the target. The temporary
name is unique to the writer (`.NAME.PID.RANDOM.tmp`: process and call) and is created with
O_CREAT | O_EXCL | O_NOFOLLOW, so a file or a symlink planted at that name is never opened, let alone
written through (another name is drawn instead). The data is fsynced before the rename and the folder after
it, so after a crash or power loss the target holds either the old bytes or the new ones.

The lowest layer of the project: model/, dataset/ and minimind_tui/ all import it, so it imports nothing of
theirs and neither torch nor Textual.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # not on Windows: copies are plain copies there
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".tmp"
# .NAME.PID.RANDOM.tmp: the pid lets a later process remove what a killed writer left (stale_temps).
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# linux/fs.h FICLONE = _IOW(0x94, 9, int): make the destination share the source's blocks copy-on-write.
_FICLONE = 0x40049409
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # linux/fcntl.h, linux/fs.h: renameat2's "relative to the cwd", "swap"
_ATTEMPTS = 100  # names drawn before giving up: each has 2^32 values, so only a planted file ever collides


def _token() -> str:
    return os.urandom(4).hex()


def _new_temp(path: Path, create: Callable[[Path], object]):
    """Create a temporary entry next to `path` with `create(name)`, which must fail with FileExistsError
    on anything already at that name; returns (what create returned, the name)."""
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{_token()}{TEMP_SUFFIX}")
        try:
            return create(tmp), tmp
        except FileExistsError:
            continue  # taken, or planted: never reuse a name we did not create
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {_ATTEMPTS} tries")


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    """A new temporary file next to `path`, opened for writing: (fd, its path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    return _new_temp(path, lambda tmp: os.open(tmp, flags, mode))


def temp_dir(path: Path, mode: int = 0o777) -> Path:
    """A new, empty temporary folder next to `path`, to fill and then rename to `path` (mkdir, like O_EXCL,
    never follows a symlink planted at the name)."""
    return _new_temp(Path(path), lambda tmp: os.mkdir(tmp, mode))[1]


def write_atomic(path: Path | str, content: bytes | str | Callable[[BinaryIO], object], mode: int = 0o666,
                 durable: bool = True) -> None:
    """Replace `path` with `content` (bytes, text written as UTF-8, or a function that writes to the binary
    file it is given, e.g. `lambda f: torch.save(obj, f)`), atomically and durably. `mode` is the new file's
    permission bits before the umask (0o600: readable by the owner only). A symlink at `path` itself is
    replaced, never followed. Raises OSError; nothing is left behind when it does.

    durable=False skips the two fsyncs, for caches only: a power loss may then leave an empty or torn file,
    which their readers must treat as missing."""
    path = Path(path)
    fd, tmp = _create_temp(path, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_exclusive(path: Path, content: str, mode: int = 0o600) -> bool:
    """Create `path` holding `content` in one step, only if nothing is there yet: a reader never sees it
    empty or half-written (a hard link of a finished temporary file). False when `path` already exists."""
    path = Path(path)
    fd, tmp = _create_temp(path, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def copy_atomic(source: Path, path: Path, mode: int = 0o666) -> None:
    """Replace `path` with a copy of `source`, atomically and durably (as write_atomic). Never a hard link: a
    tool that writes into one of two linked names in place (cp, scp, curl -o, torch.save to the same path)
    rewrites the other as well. A reflink (a copy-on-write clone, e.g. on btrfs or XFS) where the file
    system makes one: instant and sharing blocks until either file is written, when the writer gets its own."""
    with open(source, "rb") as src:
        def copy(dst: BinaryIO) -> None:
            if not _reflink(src, dst):
                shutil.copyfileobj(src, dst, 1 << 20)
        write_atomic(path, copy, mode)


def _reflink(src: BinaryIO, dst: BinaryIO) -> bool:
    """Clone `src` into the empty `dst` (Linux's FICLONE); False where the file system cannot."""
    if fcntl is None:
        return False
    try:
        fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except OSError:  # EOPNOTSUPP, EXDEV, EINVAL, ENOTTY...: copy the bytes instead
        return False
    return True


def exchange(a: Path, b: Path) -> bool:
    """Swap the entries named `a` and `b` (files or folders) in one step, durably: whoever looks, or a crash
    at any moment, finds either both old or both swapped. False, with nothing changed, where the kernel, the
    C library or the file system cannot (then the caller does it in two renames)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # no such function (old glibc, macOS) or no C library handle
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system or kernel cannot
            return False
        raise OSError(err, os.strerror(err), str(a), None, str(b))
    fsync_dir(Path(b).parent)
    return True


def no_follow(path: str | Path, flags: int) -> int:
    """An `opener` for open() that refuses a symlink at `path` (OSError) instead of writing through it: for
    the one file written in place across processes, a resumable download's NAME.part."""
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)


def publish(finished: Path, path: Path) -> None:
    """Move a file written elsewhere in the same folder (a resumable download's NAME.part) into place,
    durably: its data is flushed to disk first, then the rename."""
    fd = os.open(finished, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _replace(Path(finished), Path(path))


def _replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file inside `folder` durable: without it a power loss can undo the rename."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stale_temps(folder: Path, pattern: str, alive: Callable[[int], bool]) -> list[Path]:
    """Temporary files that writers of files named like `pattern` (a glob, e.g. "*.pth") left in `folder`
    when they were killed: those whose writing process (`alive(pid)` False) is gone."""
    found = []
    for tmp in Path(folder).glob(f".{pattern}.*{TEMP_SUFFIX}"):
        m = _TEMP.match(tmp.name)
        if m and not alive(int(m["pid"])):
            found.append(tmp)
    return found
