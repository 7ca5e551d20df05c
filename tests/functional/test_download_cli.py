"""`minimind-tui download` as a user runs it: a subprocess fetching from a local mirror on 127.0.0.1."""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from testkit import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mirror(tmp_path):
    """A plain static file server over tmp_path/mirror; yields (folder, base URL)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_list_shows_the_catalogue(tmp_path):
    result = run_cli(tmp_path, "download", "--list", timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("pretrain_hq.jsonl", "sft_mini_512.jsonl", "dpo.jsonl", "tokenizer.json"):
        assert name in result.stdout


def test_fetches_into_dataset_and_out_folders(mirror, tmp_path):
    folder, url = mirror
    (folder / "lora_identity.jsonl").write_text('{"conversations": []}\n' * 1000)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text('{"bos_token": "<s>"}')
    project = tmp_path / "project"
    project.mkdir()
    result = run_cli(project, "download", "lora_identity.jsonl", "tokenizer", "--mirror", url, timeout=120)
    assert result.returncode == 0, result.stderr
    got = project / "dataset" / "lora_identity.jsonl"
    assert got.read_bytes() == (folder / "lora_identity.jsonl").read_bytes()
    assert (project / "model" / "minimind_tokenizer" / "tokenizer_config.json").read_text() == '{"bos_token": "<s>"}'
    assert not list(project.rglob("*.part*"))
    # A second run finds the file present and sends nothing new.
    again = run_cli(project, "download", "lora_identity.jsonl", "--mirror", url, "--dest", str(project / "dataset"),
                    timeout=120)
    assert again.returncode == 0 and str(got) in again.stdout


def test_a_missing_file_is_one_clear_line_and_exit_2(mirror, tmp_path):
    _, url = mirror
    result = run_cli(tmp_path, "download", "dpo.jsonl", "--mirror", url, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 404" in lines[0] and "dpo.jsonl" in lines[0]
    assert not (tmp_path / "dataset" / "dpo.jsonl").exists()


def test_an_unknown_name_suggests_the_right_one(tmp_path):
    result = run_cli(tmp_path, "download", "pretrain_hq", timeout=120)
    assert result.returncode == 2 and "did you mean pretrain_hq.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
