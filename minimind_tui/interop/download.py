"""Fetch one catalogue file: resumable (HTTP Range into NAME.part), retried with exponential back-off,
verified (size, sha256 when known) and moved into place with an atomic rename.

A plain function with callbacks so the CLI draws a progress bar and the dashboard can run it in a worker:

    download(entry, Path("dataset"), progress=lambda done, total: ..., stop=threading.Event())

Only the standard library talks HTTP (urllib follows the mirrors' redirects to their CDNs, keeping Range).
"""
from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from dataset.atomic import no_follow, publish, write_atomic

from .catalogue import Entry
from .errors import InteropError

CHUNK = 1 << 20
USER_AGENT = "minimind-tui"
# Statuses that will not change by asking again: the next source is tried instead.
PERMANENT = {400, 401, 403, 404, 410, 451}


class DownloadError(InteropError):
    pass


class DownloadCancelled(InteropError):
    pass


class _Transient(Exception):
    """A failure worth retrying (connection dropped, 5xx, timeout)."""


class _Permanent(Exception):
    """A failure of this source that retrying will not fix (404, 403)."""


def download(entry: Entry, dest_dir, *, urls: list[str] | None = None,
             progress: Callable[[int, int | None], None] | None = None, stop: threading.Event | None = None,
             retries: int = 4, backoff_s: float = 1.0, max_backoff_s: float = 30.0, timeout_s: float = 30.0,
             max_requests: int = 100, sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `entry` into `dest_dir` and return the final path.

    retries: failed requests in a row (without new bytes) allowed per source before moving on; waits
    backoff_s, 2*backoff_s, 4*backoff_s ... (capped at max_backoff_s) between them. max_requests bounds
    the requests per source even when each one makes a little progress. A present file of the right size
    is kept as is. Raises DownloadError (or DownloadCancelled when `stop` is set; the .part stays for a
    later resume).
    """
    dest_dir = Path(dest_dir)
    final = dest_dir / entry.file
    part = dest_dir / (entry.file + ".part")
    source_file = dest_dir / (entry.file + ".part.url")
    if final.exists():
        size = final.stat().st_size
        if entry.size is None or size == entry.size:
            if progress:
                progress(size, size)
            return final
        raise DownloadError(f"{final}: already exists with {size} bytes, expected {entry.size}; "
                            f"delete it to download again")
    dest_dir.mkdir(parents=True, exist_ok=True)
    urls = urls or entry.urls()
    try:
        return _download_from(urls, entry, final, part, source_file, progress, stop, retries, backoff_s,
                              max_backoff_s, timeout_s, max_requests, sleep)
    finally:
        if not part.exists():  # the source note only matters next to a partial file
            source_file.unlink(missing_ok=True)


def _download_from(urls, entry, final, part, source_file, progress, stop, retries, backoff_s, max_backoff_s,
                   timeout_s, max_requests, sleep) -> Path:
    failures = []
    for url in urls:
        # A partial file from another source is not continued: its bytes may come from a different file version.
        if part.exists() and _read(source_file) != url:
            part.unlink()
        write_atomic(source_file, url)
        try:
            _fetch_with_retries(url, part, entry, progress, stop, retries, backoff_s, max_backoff_s, timeout_s,
                                max_requests, sleep)
        except (_Permanent, _Transient) as e:
            failures.append(f"{url}: {e}")
            continue
        _verify(part, entry, url)
        publish(part, final)
        source_file.unlink(missing_ok=True)
        return final
    raise DownloadError(f"could not download {entry.name}: " + "; ".join(failures)
                        + (f". The partial file {part} is kept: run again to resume" if part.exists() else ""))


def _fetch_with_retries(url, part, entry, progress, stop, retries, backoff_s, max_backoff_s, timeout_s,
                        max_requests, sleep) -> None:
    failures_in_a_row = 0
    for _ in range(max_requests):
        if stop is not None and stop.is_set():
            raise DownloadCancelled(f"download of {entry.name} stopped; {part} is kept: run again to resume")
        before = part.stat().st_size if part.exists() else 0
        try:
            if _fetch_once(url, part, entry, progress, stop, timeout_s):
                return
            raise _Transient("the transfer ended early")
        except _Transient as e:
            after = part.stat().st_size if part.exists() else 0
            failures_in_a_row = 0 if after > before else failures_in_a_row + 1
            if failures_in_a_row > retries:
                raise _Transient(f"{e} (gave up after {retries + 1} attempts)") from None
            if failures_in_a_row:  # a resumable drop with progress is retried at once
                delay = min(backoff_s * 2 ** (failures_in_a_row - 1), max_backoff_s)
                if stop is not None and sleep is time.sleep:
                    stop.wait(delay)  # a stop request ends the wait early
                else:
                    sleep(delay)
    raise _Transient(f"still incomplete after {max_requests} requests")


def _fetch_once(url, part: Path, entry: Entry, progress, stop, timeout_s) -> bool:
    """One request, appending to `part`. True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: complete, or a stale part from another file
            total = _total_from_content_range(e.headers.get("Content-Range"))
            if total == have or (total is None and entry.size == have):
                return True
            part.unlink()
            raise _Transient("the server refused to resume (416); starting over") from None
        if e.code in PERMANENT:
            raise _Permanent(f"HTTP {e.code} {e.reason}") from None
        raise _Transient(f"HTTP {e.code} {e.reason}") from None
    except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as e:
        raise _Transient(_describe(e)) from None

    with response:
        if response.status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Transient(f"the server resumed at byte {start}, not {have}; starting over")
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the whole file (a server without Range support starts again from byte 0)
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        total = total if total is not None else entry.size
        if entry.size is not None and total is not None and total != entry.size:
            raise DownloadError(f"{url}: the server offers {total} bytes but {entry.name} has {entry.size}; "
                                f"the file upstream changed or the mirror is wrong")
        _check_space(part.parent, (total - have) if total is not None else None)
        expected_now = response.headers.get("Content-Length")
        expected_now = int(expected_now) if expected_now and expected_now.isdigit() else None
        received = 0
        with open(part, mode, opener=no_follow) as f:  # a symlink planted at NAME.part is refused
            if progress:
                progress(have, total)
            while True:
                if stop is not None and stop.is_set():
                    raise DownloadCancelled(f"download of {entry.name} stopped; {part} is kept: run again "
                                            f"to resume")
                try:
                    chunk = response.read(CHUNK)
                except http.client.IncompleteRead as e:
                    f.write(e.partial)
                    raise _Transient("the connection dropped mid-file") from None
                except (TimeoutError, ConnectionError, OSError, http.client.HTTPException) as e:
                    raise _Transient(_describe(e)) from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                if progress:
                    progress(have + received, total)
        if total is not None and have + received > total:
            part.unlink()
            raise _Transient(f"the server sent more than the {total} bytes it announced; starting over")
        if expected_now is not None and received < expected_now:
            raise _Transient(f"the connection dropped after {received} of {expected_now} bytes")
        return total is None or have + received >= total


def _verify(part: Path, entry: Entry, url: str) -> None:
    size = part.stat().st_size
    if entry.size is not None and size != entry.size:
        part.unlink()
        raise DownloadError(f"{entry.name} from {url}: got {size} bytes, expected {entry.size}; the partial "
                            f"file was deleted, run again")
    if entry.sha256:
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256.lower():
            part.unlink()
            raise DownloadError(f"{entry.name} from {url}: sha256 mismatch (got {digest.hexdigest()[:16]}…, "
                                f"expected {entry.sha256[:16]}…); the corrupt file was deleted, run again")


def _check_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(f"{folder}: {needed / 1e9:.1f} GB needed but only {free / 1e9:.1f} GB free")


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


def _start_from_content_range(value: str | None) -> int | None:
    m = _RANGE.match(value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = _RANGE.match(value or "") or _UNSATISFIED.match(value or "")
    if not m or m.groups()[-1] == "*":
        return None
    return int(m.groups()[-1])


def _describe(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason or e) or type(e).__name__


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None



