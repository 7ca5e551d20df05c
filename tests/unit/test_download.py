"""Downloads against a local HTTP server on 127.0.0.1 (no outside network), whose handler implements Range
and can misbehave on cue: drop the connection mid-file, answer 500/404, ignore Range, send short or
corrupt bodies. Back-off waits go to a recorder instead of sleeping."""
from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest

from minimind_tui.interop.catalogue import CATALOGUE, Entry, select
from minimind_tui.interop.download import DownloadCancelled, DownloadError, download
from minimind_tui.interop.errors import InteropError

DATA = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several 1 MiB chunks
SHA = hashlib.sha256(DATA).hexdigest()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client hanging up mid-body (a stopped or refused download) is expected here


class Server:
    """Serves `files`; `plan` maps a path to a list of actions, one per request (then "ok")."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.plan: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                state.requests.append((self.path, self.headers.get("Range")))
                actions = state.plan.get(self.path) or []
                action = actions.pop(0) if actions else "ok"
                data = state.files.get(self.path)
                if action.startswith("status:") or data is None:
                    self.send_error(int(action.split(":")[1]) if action.startswith("status:") else 404)
                    return
                if action == "corrupt":
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and action != "ignore_range":
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if action.startswith("drop_after:"):  # announce everything, send part, hang up
                    body = body[: int(action.split(":")[1])]
                elif action == "short":
                    body = body[:-100]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval only makes shutdown() quick; nothing waits on it otherwise.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def paths(self, path):
        return [r for r in self.requests if r[0] == path]


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def waits():
    return []  # back-off delays the downloader asked for


def fetch(server, tmp_path, waits, entry=None, paths=("/a/f.bin",), **kw):
    entry = entry or Entry("f.bin", "dataset", size=len(DATA), sha256=SHA)
    kw.setdefault("retries", 3)
    return download(entry, tmp_path, urls=[server.url + p for p in paths], sleep=waits.append, timeout_s=10, **kw)


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "f.bin")


def test_full_download_verifies_and_renames(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    seen = []
    path = fetch(server, tmp_path, waits, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "f.bin" and path.read_bytes() == DATA
    assert leftovers(tmp_path) == []  # no .part / .part.url left behind
    assert seen[-1] == (len(DATA), len(DATA)) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(server.requests) == 1 and waits == []


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["drop_after:1500000"]
    path = fetch(server, tmp_path, waits)
    assert path.read_bytes() == DATA
    assert server.requests == [("/a/f.bin", None), ("/a/f.bin", "bytes=1500000-")]
    assert waits == []  # a drop that made progress is retried at once


def test_stopped_download_keeps_its_part_and_a_later_run_resumes(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    stop = threading.Event()

    def stop_after_first_mib(done, total):
        if done >= 1 << 20:
            stop.set()

    with pytest.raises(DownloadCancelled, match="resume"):
        fetch(server, tmp_path, waits, progress=stop_after_first_mib, stop=stop)
    kept = (tmp_path / "f.bin.part").stat().st_size
    assert 0 < kept < len(DATA) and not (tmp_path / "f.bin").exists()
    path = fetch(server, tmp_path, waits)
    assert path.read_bytes() == DATA and server.requests[-1] == ("/a/f.bin", f"bytes={kept}-")


def test_server_errors_are_retried_with_exponential_back_off(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["status:500", "status:503", "status:500"]
    assert fetch(server, tmp_path, waits, backoff_s=0.5).read_bytes() == DATA
    assert waits == [0.5, 1.0, 2.0] and len(server.requests) == 4


def test_a_server_that_keeps_failing_is_given_up_on_after_bounded_attempts(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.files["/b/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["status:500"] * 50
    server.plan["/b/f.bin"] = ["status:502"] * 50
    with pytest.raises(DownloadError, match="HTTP 500.*HTTP 502") as e:
        fetch(server, tmp_path, waits, paths=("/a/f.bin", "/b/f.bin"), retries=3)
    assert e.value.user_facing
    assert len(server.paths("/a/f.bin")) == 4 and len(server.paths("/b/f.bin")) == 4
    assert waits == [1.0, 2.0, 4.0] * 2
    assert not (tmp_path / "f.bin").exists()


def test_not_found_moves_to_the_mirror_without_retrying(server, tmp_path, waits):
    server.files["/b/f.bin"] = DATA
    path = fetch(server, tmp_path, waits, paths=("/a/f.bin", "/b/f.bin"))
    assert path.read_bytes() == DATA
    assert len(server.paths("/a/f.bin")) == 1 and waits == []


def test_not_found_everywhere_names_each_source(server, tmp_path, waits):
    with pytest.raises(DownloadError, match=r"/a/f\.bin: HTTP 404.*/b/f\.bin: HTTP 404"):
        fetch(server, tmp_path, waits, paths=("/a/f.bin", "/b/f.bin"))


def test_a_file_shorter_than_the_catalogue_says_is_refused(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA[:-1000]
    with pytest.raises(DownloadError, match=f"offers {len(DATA) - 1000} bytes.*has {len(DATA)}"):
        fetch(server, tmp_path, waits)
    assert not (tmp_path / "f.bin").exists() and leftovers(tmp_path) == []


def test_a_body_shorter_than_its_content_length_is_not_retried_forever(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["short"] * 100
    with pytest.raises(DownloadError, match="dropped.*gave up after 4 attempts.*kept"):
        fetch(server, tmp_path, waits, retries=3)
    # One request that made progress, then 4 that could not (the same 100 bytes always missing).
    assert len(server.requests) == 5 and waits == [1.0, 2.0, 4.0]
    assert (tmp_path / "f.bin.part").stat().st_size == len(DATA) - 100 and not (tmp_path / "f.bin").exists()


def test_endless_small_drops_are_bounded_by_max_requests(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["drop_after:10"] * 100
    with pytest.raises(DownloadError, match="after 6 requests"):
        fetch(server, tmp_path, waits, max_requests=6)
    assert len(server.requests) == 6


def test_checksum_mismatch_deletes_the_corrupt_file(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["corrupt"]
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(server, tmp_path, waits)
    assert not (tmp_path / "f.bin").exists() and leftovers(tmp_path) == []


def test_unknown_size_and_checksum_still_detect_a_dropped_connection(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["drop_after:70000"]
    path = fetch(server, tmp_path, waits, entry=Entry("f.bin", "dataset"))
    assert path.read_bytes() == DATA and server.requests[1][1] == "bytes=70000-"


def test_a_server_ignoring_range_restarts_cleanly(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    server.plan["/a/f.bin"] = ["drop_after:5000", "ignore_range"]
    assert fetch(server, tmp_path, waits).read_bytes() == DATA


def test_a_complete_part_is_finished_through_416(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    (tmp_path / "f.bin.part").write_bytes(DATA)
    (tmp_path / "f.bin.part.url").write_text(server.url + "/a/f.bin")
    assert fetch(server, tmp_path, waits).read_bytes() == DATA
    assert server.requests == [("/a/f.bin", f"bytes={len(DATA)}-")]


def test_a_part_from_another_source_is_not_continued(server, tmp_path, waits):
    server.files["/a/f.bin"] = DATA
    (tmp_path / "f.bin.part").write_bytes(b"x" * 1000)
    (tmp_path / "f.bin.part.url").write_text("http://elsewhere/f.bin")
    assert fetch(server, tmp_path, waits).read_bytes() == DATA
    assert server.requests == [("/a/f.bin", None)]


def test_a_present_file_is_kept_without_a_request(server, tmp_path, waits):
    (tmp_path / "f.bin").write_bytes(DATA)
    assert fetch(server, tmp_path, waits).read_bytes() == DATA and server.requests == []
    (tmp_path / "f.bin").write_bytes(b"short")
    with pytest.raises(DownloadError, match="delete it"):
        fetch(server, tmp_path, waits)


def test_catalogue_names_sources_and_destinations(tmp_path):
    names = {e.name for e in CATALOGUE}
    for needed in ("pretrain_hq.jsonl", "sft_mini_512.jsonl", "sft_512.jsonl", "sft_1024.jsonl", "sft_2048.jsonl",
                   "dpo.jsonl", "r1_mix_1024.jsonl", "lora_identity.jsonl", "tokenizer.json", "full_sft_512.pth"):
        assert needed in names
    sft = select(["sft_mini_512.jsonl"])[0]
    assert sft.urls() == [
        "https://www.modelscope.cn/datasets/gongjy/minimind_dataset/resolve/master/sft_mini_512.jsonl",
        "https://huggingface.co/datasets/jingyaogong/minimind_dataset/resolve/main/sft_mini_512.jsonl"]
    assert sft.urls("hf")[0].startswith("https://huggingface.co/")
    assert sft.urls(mirror="http://m/x/") == ["http://m/x/sft_mini_512.jsonl"]
    assert sft.destination(tmp_path) == tmp_path / "dataset"
    tok = select(["tokenizer"])
    assert [e.name for e in tok] == ["tokenizer.json", "tokenizer_config.json"]
    assert tok[0].destination(tmp_path) == tmp_path / "model" / "minimind_tokenizer"
    assert select(["full_sft_512.pth"])[0].destination(tmp_path) == tmp_path / "out"
    assert {e.name for e in select(["lora"])} == {"lora_identity.jsonl", "lora_medical.jsonl", "lora_exam.jsonl"}
    with pytest.raises(InteropError, match="did you mean.*sft_mini_512.jsonl"):
        select(["sft_mini_512"])
