"""Choosing the PyTorch CUDA build for the driver (minimind_tui/gpu/torch_build.py), and scripts/install.sh's
decisions on a GPU box, driven by a fake nvidia-smi on PATH and a fake venv python that records pip."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from minimind_tui.gpu.torch_build import NoBuild, choose

ROOT = Path(__file__).resolve().parents[2]
CHOOSER = ROOT / "minimind_tui" / "gpu" / "torch_build.py"


@pytest.mark.parametrize("driver, caps, tag", [
    ("580.65.06", ["9.0"], "cu130"),
    ("590.10", ["8.0", "8.6"], "cu130"),
    ("575.51.03", ["8.9"], "cu128"),
    ("570.86.15", ["10.0"], "cu128"),          # Blackwell: 12.8 is the oldest CUDA that runs it
    ("565.57.01", ["8.0"], "cu126"),
    ("560.35.03", None, "cu126"),              # compute capability unknown (old nvidia-smi): by driver only
    ("550.54.15", ["9.0"], "cu124"),           # rented boxes often run 535-550
    ("535.104.05", ["8.0"], "cu124"),
    ("525.60.13", ["7.5"], "cu124"),
    ("580.65.06", ["7.0", "9.0"], "cu126"),    # a V100 among them: cu128+ dropped Volta
    ("575.51.03", ["6.1"], "cu126"),
])
def test_the_newest_build_the_driver_and_gpus_run(driver, caps, tag):
    build, why = choose(driver, caps)
    assert build.tag == tag and why


def test_cu124_means_torch_2_6_and_says_why():
    build, why = choose("535.104.05", ["8.0"])
    assert build.requirement == "torch>=2.6,<2.7" and "minor version compatibility" in why


@pytest.mark.parametrize("driver, caps, words", [
    ("470.82.01", ["8.0"], "upgrade the NVIDIA driver"),
    ("560.35.03", ["12.0"], "Blackwell"),
    ("575.51.03", ["3.7"], "compute capability 3.7"),
])
def test_no_build_says_what_to_change(driver, caps, words):
    with pytest.raises(NoBuild, match=words):
        choose(driver, caps)


def fake_exe(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def fake_nvidia_smi(folder: Path, driver: str | None, caps: str | None = "8.6") -> None:
    """driver None: no GPU (nvidia-smi fails). caps None: a driver too old to know --query-gpu=compute_cap."""
    if driver is None:
        fake_exe(folder, "nvidia-smi", 'echo "NVIDIA-SMI has failed: no devices were found"; exit 9\n')
        return
    cc_reply = (f'echo "{driver}, {caps}"; exit 0' if caps else
                'echo \'Field "compute_cap" is not a valid field to query.\'; exit 2')
    fake_exe(folder, "nvidia-smi", f"""case "$*" in
  *-L*) echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1234)";;
  *driver_version,compute_cap*) {cc_reply};;
  *driver_version*) echo "{driver}";;
  *) exit 4;;
esac
""")


def run_chooser(tmp_path, driver, caps):
    fake_nvidia_smi(tmp_path / "bin", driver, caps)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, str(CHOOSER)], capture_output=True, text=True, env=env, timeout=60)


def test_the_chooser_reads_nvidia_smi(tmp_path):
    done = run_chooser(tmp_path, "570.86.15", "9.0")
    assert done.returncode == 0 and done.stdout.split("\t")[:2] == ["cu128", "torch>=2.7"]
    old = run_chooser(tmp_path, "535.54.03", None)  # no compute_cap field: falls back to the driver alone
    assert old.returncode == 0 and old.stdout.startswith("cu124\t")
    too_old = run_chooser(tmp_path, "470.82.01", "8.0")
    assert too_old.returncode == 2 and "upgrade the NVIDIA driver" in too_old.stderr and not too_old.stdout


# ----- scripts/install.sh with a fake venv: what it installs and why -----
FAKE_PYTHON = """
state="$FAKE_DIR/torch"   # none | cpu | cuda: the torch this fake venv has
case "$1" in
  *torch_build.py) exec "$REAL_PYTHON" "$@";;
  -c) torch=$(cat "$state")
      case "$2" in
        *cuda.is_available*) [ "$torch" = cuda ];;
        *__version__*) [ "$torch" != none ] && echo "2.6.0+fake CUDA 12.4";;
        *) [ "$torch" != none ];;
      esac; exit $?;;
  -m) shift 2; echo "pip $*" >> "$FAKE_DIR/pip.log"
      case "$*" in *download.pytorch.org*) echo "$FAKE_TORCH_AFTER" > "$state";; esac; exit 0;;
esac
exit 3
"""


def install(tmp_path, driver, torch_before, torch_after="cuda", caps="8.6"):
    fake_nvidia_smi(tmp_path / "bin", driver, caps)
    fake_exe(tmp_path / "venv" / "bin", "python", FAKE_PYTHON)
    (tmp_path / "torch").write_text(torch_before + "\n")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "MINIMIND_VENV": str(tmp_path / "venv"), "FAKE_DIR": str(tmp_path), "REAL_PYTHON": sys.executable,
           "FAKE_TORCH_AFTER": torch_after}
    env.pop("MINIMIND_TORCH_BUILD", None)
    done = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], capture_output=True, text=True, env=env,
                          timeout=120)
    log = (tmp_path / "pip.log").read_text().splitlines() if (tmp_path / "pip.log").exists() else []
    return done, log


def test_install_keeps_a_torch_that_works_on_the_gpu(tmp_path):
    done, pip = install(tmp_path, "535.104.05", torch_before="cuda")
    assert done.returncode == 0, done.stderr
    assert "keeping torch" in done.stderr and pip == ["pip install -q -e ."]


def test_install_picks_the_build_the_driver_runs_and_checks_it(tmp_path):
    done, pip = install(tmp_path, "535.104.05", torch_before="none")
    assert done.returncode == 0, done.stderr
    assert pip[0] == "pip install --ignore-installed --index-url https://download.pytorch.org/whl/cu124 " \
                     "torch>=2.6,<2.7"
    assert "driver 535.104.05" in done.stderr and "torch.cuda.is_available() is True" in done.stderr


def test_install_replaces_a_torch_that_does_not_see_the_gpu(tmp_path):
    done, pip = install(tmp_path, "580.82.07", torch_before="cpu", caps="9.0")
    assert done.returncode == 0, done.stderr
    assert "does not see the GPU" in done.stderr and "whl/cu130 torch>=2.9" in pip[0]


def test_install_says_so_when_the_new_torch_still_cannot_use_the_gpu(tmp_path):
    done, pip = install(tmp_path, "570.86.15", torch_before="none", torch_after="cpu")
    assert done.returncode == 1 and "torch.cuda.is_available() is False" in done.stderr
    assert "doctor" in done.stderr and "whl/cu128" in pip[0] and len(pip) == 1  # stopped before the package


def test_install_without_a_gpu_keeps_the_cpu_path(tmp_path):
    done, pip = install(tmp_path, None, torch_before="cpu")
    assert done.returncode == 0 and pip == ["pip install -q -e ."]
    done, pip = install(tmp_path / "again", None, torch_before="none")
    assert pip[0].startswith("pip install --retries 0 --timeout 15 --index-url https://download.pytorch.org/whl/cpu")
    assert "No NVIDIA GPU found" in done.stderr
