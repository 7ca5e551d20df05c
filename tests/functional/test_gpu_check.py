"""bench/gpu_check.sh runs end to end on a machine without a GPU, reporting the GPU-only checks as skipped."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_in_quick_mode(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run bench/gpu_check.sh for real")
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--quick", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "gpu_check.json").read_text())
    assert {k for k, v in results.items() if "skipped" in v} == {"rng", "compile", "fp16", "nvml", "chat"}
    step = results["step"]
    assert step["device"] == "cpu" and step["ours"]["step_s"] > 0 and step["reference"]["step_s"] > 0
    assert step["loss_max_diff"] < 1e-3  # the same loss as the padded reference step
    doctor = json.loads((out / "doctor.json").read_text())
    assert doctor["smoke"][0]["device"] == "cpu" and doctor["smoke"][0]["status"] == "OK"
    assert "skipped" in (out / "pytest_gpu.txt").read_text()
    assert "failed=0" in (out / "summary.txt").read_text()
