"""Multi-node runs: each node's local rank 0 builds (or opens) the token cache on that node, because the
nodes need not share a file system. Two Gloo processes on this machine play two nodes of one process
each, with a cache directory of their own."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from minimind_tui.demo import pretrain_lines, write_jsonl

NODE = """
import sys
from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.train import data, distributed
from model import Tokenizer

info, _ = distributed.init("cpu")
settings = {"data_path": sys.argv[1], "max_seq_len": 48, "mode": "pretrain", "skip_bad_lines": False}
cache = data.prepare(settings, Tokenizer.from_dir(demo_tokenizer_dir()), info)
print("FOLDER", cache.folder, len(cache))
distributed.shutdown(info)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_each_node_builds_its_own_token_cache(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", pretrain_lines(16))
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
               "MINIMIND_CACHE": str(tmp_path / f"node{rank}")}  # each node's own home directory
        procs.append(subprocess.Popen([sys.executable, "-c", NODE, str(tmp_path / "p.jsonl")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, out
        folder = next(line.split()[1] for line in out.splitlines() if line.startswith("FOLDER"))
        assert folder.startswith(str(tmp_path / f"node{rank}")), (rank, folder)
