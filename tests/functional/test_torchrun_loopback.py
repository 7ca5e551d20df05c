"""Multi-process runs the dashboard starts: torchrun's rendezvous stores listen on 127.0.0.1 only.

Plain `torchrun --standalone` (and --rdzv-endpoint 127.0.0.1:PORT, or --master_addr 127.0.0.1) listen on every
interface: TCPStore binds the wildcard address whatever host it is given. Two real ranks (Gloo, CPU) check
that the stores of the wrapper's agent are bound to loopback and that the ranks still meet and all-reduce."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from minimind_tui.runs.launcher import train_argv

PROBE = textwrap.dedent("""
    import json, os, psutil, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    t = torch.ones(1)
    dist.all_reduce(t)
    if dist.get_rank() == 0:
        agent = psutil.Process(os.getppid())
        listening = [c.laddr.ip for c in agent.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        print("PROBE " + json.dumps({"sum": t.item(), "master": os.environ["MASTER_ADDR"], "listening": listening}))
    dist.destroy_process_group()
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the agent's sockets the Linux way")
def test_the_agents_stores_listen_on_loopback_only(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    # The very argv the dashboard launches with, the trainer module swapped for the probe.
    argv = train_argv(["pretrain"], None, gpus=2)
    argv = argv[:argv.index("-m", 3)] + ["probe.py"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    probe = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert probe["sum"] == 2.0 and probe["master"] == "127.0.0.1"
    assert probe["listening"] and set(probe["listening"]) == {"127.0.0.1"}, probe
