"""Host readings and the trainer's process tree via psutil."""
from __future__ import annotations

import os
import subprocess
import sys

from minimind_tui.gpu.system import SystemMonitor


def test_reads_the_host_and_a_process_tree_with_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        r = SystemMonitor().read([os.getpid()])
        assert r.ram_total_gb > 0 and 0 <= r.cpu_pct <= 100 * r.cpu_count
        assert os.getpid() in r.trainer_pids and child.pid in r.trainer_pids  # torchrun workers are children
        assert r.trainer_rss_gb > 0
    finally:
        child.kill()
        child.wait()


def test_no_trainer_means_no_trainer_fields():
    r = SystemMonitor().read([])
    assert r.trainer_cpu_pct is None and r.trainer_rss_gb is None and r.trainer_pids == ()


def test_dead_pids_are_skipped():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert SystemMonitor().read([proc.pid]).trainer_pids == ()
