from minimind_tui.runs.events import EventWriter, encode
from minimind_tui.runs.reader import TailReader, read_all


def test_partial_last_line_is_held_back_until_complete(tmp_path):
    path = tmp_path / "m.jsonl"
    line = encode("step", now=1.0, step=1, loss=2.5)
    path.write_bytes(line[:10])
    reader = TailReader(path)
    assert reader.read_new() == []
    with open(path, "ab") as f:
        f.write(line[10:])
    assert reader.read_new() == [{"event": "step", "time": 1.0, "step": 1, "loss": 2.5}]
    assert reader.read_new() == []


def test_junk_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"not json\n[1,2]\n" + encode("end", now=2.0, status="done") + b'{"no_event": 1}\n')
    reader = TailReader(path)
    assert [e["event"] for e in reader.read_new()] == ["end"]
    assert reader.skipped == 3


def test_truncated_file_is_read_again_from_the_start(tmp_path):
    path = tmp_path / "m.jsonl"
    w = EventWriter(path, clock=lambda: 5.0)
    w.emit("start", mode="sft")
    w.emit("step", step=1)
    reader = TailReader(path)
    assert len(reader.read_new()) == 2
    path.write_bytes(encode("start", now=6.0, mode="pretrain"))
    assert reader.read_new()[0]["mode"] == "pretrain"


def test_read_all_goes_past_a_chunk_without_events(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"x" * 100 + b"\n" + encode("step", now=1.0, step=7))
    # Chunks smaller than the junk line: the first reads yield no event.
    assert TailReader(path).read_new(max_bytes=50) == []
    assert [e["step"] for e in read_all(path, chunk=50)] == [7]


def test_missing_file_reads_as_nothing(tmp_path):
    assert TailReader(tmp_path / "none.jsonl").read_new() == []


def test_line_tail_starts_near_the_end_and_drops_the_cut_line(tmp_path):
    from minimind_tui.runs.reader import LineTail

    path = tmp_path / "train.log"
    path.write_bytes(b"".join(b"line %03d\n" % i for i in range(100)))  # 9 bytes a line
    tail = LineTail(path, tail_bytes=40)
    assert tail.read_lines() == [b"line 096", b"line 097", b"line 098", b"line 099"]
    with open(path, "ab") as f:
        f.write(b"line 100\n")
    assert tail.read_lines() == [b"line 100"]


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    from testkit import finishes

    from minimind_tui.runs.reader import NotRegularFile, read_regular

    os.mkfifo(tmp_path / "m.jsonl")
    for call in (TailReader(tmp_path / "m.jsonl").read_new, lambda: read_all(tmp_path / "m.jsonl"),
                 lambda: read_regular(tmp_path / "m.jsonl")):
        error = finishes(call)
        assert isinstance(error, NotRegularFile) and str(error) == "m.jsonl is a FIFO, not a regular file"
    (tmp_path / "folder.jsonl").mkdir()
    error = finishes(TailReader(tmp_path / "folder.jsonl").read_new)
    assert str(error) == "folder.jsonl is a folder, not a regular file"
    assert read_regular(tmp_path / "absent") is None
