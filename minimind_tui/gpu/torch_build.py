"""Which PyTorch CUDA build this machine's NVIDIA driver and GPUs can run. Standard library only: the installer
runs this file before anything is installed, and `doctor` imports it for its advice.

    python minimind_tui/gpu/torch_build.py      # reads nvidia-smi; prints "cu128<TAB>torch>=2.7<TAB>why"
    python minimind_tui/gpu/torch_build.py --driver 535.104.05 --cc 8.0,8.6

The facts it encodes (as of PyTorch 2.14):
- NVIDIA (CUDA Toolkit release notes, "CUDA Toolkit and corresponding driver versions"): CUDA 13.0 needs driver
  >= 580.65.06, 12.8 >= 570.26, 12.6 >= 560.28.03; with CUDA minor version compatibility every CUDA 12.x
  runtime also runs on any driver >= 525.60.13 (no PTX JIT), and 13.x on >= 580.
- PyTorch (RELEASE.md support matrix, release notes 2.8-2.11): cu126 wheels run Maxwell to Hopper
  (compute capability 5.0-9.0, no Blackwell); cu128 and cu130 run Turing onwards (7.5+, Blackwell included);
  the newest torch built for CUDA 12.4 is 2.6.
So the newest build whose CUDA the driver supports natively is chosen, cu124 (torch 2.6, by minor version
compatibility) below 560, and pre-Turing GPUs stay on cu126 or cu124.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass

INDEX_URL = "https://download.pytorch.org/whl/{tag}"


@dataclass(frozen=True)
class Build:
    tag: str                        # the PyTorch index: cu130, cu128, ...
    cuda: str
    min_driver: tuple[int, ...]     # the Linux driver the CUDA version needs
    min_cc: tuple[int, int]         # oldest GPU architecture in the wheels
    max_cc_major: int | None        # newest architecture family (None: current ones included)
    requirement: str                # the torch versions published for it (our floor is 2.6)


BUILDS = (  # newest first
    Build("cu130", "13.0", (580, 65, 6), (7, 5), None, "torch>=2.9"),
    Build("cu128", "12.8", (570, 26), (7, 5), None, "torch>=2.7"),
    Build("cu126", "12.6", (560, 28, 3), (5, 0), 9, "torch>=2.6"),
    # CUDA 12.4 natively needs 550.54.14; minor version compatibility runs it from 525.60.13.
    Build("cu124", "12.4", (525, 60, 13), (5, 0), 9, "torch>=2.6,<2.7"),
)


class NoBuild(Exception):
    """No PyTorch CUDA build runs here; the message says what to change."""


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.strip().split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def choose(driver: str, capabilities: list[str] | None = None) -> tuple[Build, str]:
    """(build, why) for an NVIDIA driver version and the GPUs' compute capabilities ("8.0"; None: unknown)."""
    drv = version_tuple(driver)
    caps = [version_tuple(c)[:2] for c in capabilities or []]
    oldest, newest = (min(caps), max(caps)) if caps else (None, None)
    for build in BUILDS:
        if drv < build.min_driver:
            continue
        if oldest is not None and oldest < build.min_cc:
            continue
        if newest is not None and build.max_cc_major is not None and newest[0] > build.max_cc_major:
            continue
        return build, _reason(driver, build, oldest)
    if drv < BUILDS[-1].min_driver:
        raise NoBuild(f"driver {driver} is older than 525.60.13, the oldest that runs CUDA 12 (torch>=2.6 needs "
                      f"it): upgrade the NVIDIA driver (570 or newer is best)")
    if oldest is not None and oldest < BUILDS[-1].min_cc:
        raise NoBuild(f"a GPU of compute capability {_cc(oldest)} is older than any current PyTorch build "
                      f"supports (5.0): use a newer GPU, or CUDA_VISIBLE_DEVICES to leave it out")
    raise NoBuild(f"driver {driver} is too old for a GPU of compute capability {_cc(newest)} (Blackwell needs "
                  f"CUDA 12.8, driver 570.26 or newer): upgrade the NVIDIA driver")


def _reason(driver: str, build: Build, oldest) -> str:
    if build.tag == "cu124":
        return (f"driver {driver} is older than 560, which CUDA 12.6 needs; CUDA 12.4 runs on it by minor version "
                f"compatibility, and torch 2.6 is the newest built for it")
    if oldest is not None and oldest < (7, 5) and build.tag == "cu126":
        return (f"a GPU of compute capability {_cc(oldest)} (before Turing): cu126 is the newest PyTorch build "
                f"that still runs it")
    return f"driver {driver} supports CUDA {build.cuda}, the newest PyTorch build it can run"


def _cc(cap) -> str:
    return ".".join(str(x) for x in cap)


def read_nvidia_smi() -> tuple[str, list[str] | None]:
    """(driver version, compute capabilities or None) from nvidia-smi; drivers before ~510 lack compute_cap."""
    def query(fields: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError((out.stderr or out.stdout).strip() or f"nvidia-smi exited with {out.returncode}")
        return [[f.strip() for f in line.split(",")] for line in out.stdout.splitlines() if line.strip()]
    try:
        rows = query("driver_version,compute_cap")
        return rows[0][0], [r[1] for r in rows]
    except (RuntimeError, IndexError):
        rows = query("driver_version")
        if not rows:
            raise RuntimeError("nvidia-smi lists no GPU") from None
        return rows[0][0], None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--driver", help="NVIDIA driver version (default: from nvidia-smi)")
    p.add_argument("--cc", help="compute capabilities, comma-separated (default: from nvidia-smi)")
    args = p.parse_args(argv)
    try:
        driver, caps = (args.driver, args.cc.split(",") if args.cc else None) if args.driver else read_nvidia_smi()
        build, why = choose(driver, caps)
    except (NoBuild, RuntimeError, OSError, ValueError) as e:
        print(f"no PyTorch CUDA build chosen: {e}", file=sys.stderr)
        return 2
    print(f"{build.tag}\t{build.requirement}\t{why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
