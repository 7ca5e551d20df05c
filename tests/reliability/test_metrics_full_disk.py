"""Round two, item 6: a full disk during a metrics.jsonl write leaves no half event.

On a real full file system (a 1 MiB tmpfs, so the test needs root; skipped otherwise) write() stores what fits
in the file's last page and returns a short count instead of raising. The writer used to ignore the count:
half an event stayed in the file and, once space was freed, the next event was written onto its end, so the
dashboard lost both. Now an event is written whole or not at all, and readers recover at the next event.
"""
from __future__ import annotations

import threading

import orjson
import pytest
from reliability_kit import fill

from minimind_tui.runs.events import EventWriter, encode
from minimind_tui.runs.reader import TailReader, read_all


@pytest.fixture
def tiny_disk(tmpfs):
    return tmpfs("1m")


def test_an_event_cut_short_by_a_full_disk_is_removed(tiny_disk, measured):
    path = tiny_disk / "metrics.jsonl"
    writer = EventWriter(path, clock=lambda: 1.0)
    writer.emit("start", mode="pretrain")
    for step in range(1, 4):
        writer.emit("step", step=step, loss=2.5)
    before = path.read_bytes()
    assert len(before) % 4096, "the file's last page must have room for part of the next event"
    filler = fill(tiny_disk)
    big = "x" * 8000  # longer than the room left in the last page: the write is cut short, then fails
    with pytest.raises(OSError):
        writer.emit("log", level="warning", message=big)
    assert path.read_bytes() == before  # nothing of the failed event is left
    filler.unlink()
    writer.emit("end", status="done", step=3)
    writer.close()
    reader = TailReader(path)
    events = reader.read_new()
    assert [e["event"] for e in events] == ["start", "step", "step", "step", "end"] and reader.skipped == 0
    measured["metrics full disk"] = (f"1 MiB tmpfs filled, an 8 kB event against {4096 - len(before) % 4096} "
                                     "free bytes in the last page: OSError raised, file cut back to its "
                                     f"{len(before)} bytes; next event clean, 0 lines skipped")


def test_the_next_event_is_recovered_from_a_torn_line(tmp_path):
    """A file torn before this fix (or by a crash) has half an event with the next one glued onto it."""
    path = tmp_path / "metrics.jsonl"
    whole = [encode("step", now=1.0, step=s, loss=2.0) for s in (1, 2, 3)]
    torn = encode("log", now=1.0, level="warning", message="cut here")[:25]
    path.write_bytes(whole[0] + torn + whole[1] + b"{not json\n" + whole[2])
    reader = TailReader(path)
    assert [e["step"] for e in reader.read_new()] == [1, 2, 3]
    assert reader.skipped == 2
    assert [e.get("step") for e in read_all(path)] == [1, 2, 3]


def test_a_torn_last_line_is_ended_before_the_next_event(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(encode("step", now=1.0, step=1) + encode("step", now=1.0, step=2)[:12])
    writer = EventWriter(path, clock=lambda: 2.0)
    writer.emit("end", status="stopped", step=1)
    writer.emit("log", level="info", message="after")
    lines = path.read_bytes().split(b"\n")
    assert orjson.loads(lines[2])["event"] == "end" and orjson.loads(lines[3])["event"] == "log"


def test_a_reader_that_saw_half_an_event_reads_what_replaced_it(tmp_path):
    """The dashboard can poll between the short write and the cut: it must not keep those bytes."""
    path = tmp_path / "metrics.jsonl"
    first = encode("step", now=1.0, step=1)
    failed = encode("log", now=1.0, level="warning", message="x" * 50)
    path.write_bytes(first + failed[:20])
    reader = TailReader(path)
    assert [e["step"] for e in reader.read_new()] == [1]
    with open(path, "r+b") as f:  # the writer cuts the failed event off and writes a longer one
        f.truncate(len(first))
        f.seek(len(first))
        f.write(encode("end", now=2.0, status="done", step=1, reason="y" * 80))
    assert [e["event"] for e in reader.read_new()] == ["end"] and reader.skipped == 0


def test_events_from_two_threads_stay_whole(tmp_path):
    """The stall watchdog emits from its own thread while the loop emits steps."""
    path = tmp_path / "metrics.jsonl"
    writer = EventWriter(path)

    def many(kind):
        for i in range(300):
            writer.emit(kind, step=i, message="z" * (i % 97))

    threads = [threading.Thread(target=many, args=(k,)) for k in ("step", "stall")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = TailReader(path)
    assert len(reader.read_new()) == 600 and reader.skipped == 0
