"""Which device and precision a run trains with, and why a GPU the machine has may be one PyTorch
cannot use.

A torch wheel built for a newer CUDA than the driver supports (or a CPU-only wheel) reports
torch.cuda.is_available() == False on a GPU box; training would then run on the CPU, a hundred times
slower, with nothing said. So the driver's own view (the kernel module's list, the device files,
nvidia-smi) is asked too, and a GPU torch cannot use is an error unless --device cpu asks for the CPU.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import torch

from minimind_tui.errors import UserError


def nvidia_gpus() -> int:
    """NVIDIA GPUs the driver knows about, found without torch (which may be unable to use them)."""
    listed = Path("/proc/driver/nvidia/gpus")
    if listed.is_dir():
        return len(list(listed.iterdir()))
    nodes = [p for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name)]
    if nodes:
        return len(nodes)
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def cuda_problem() -> str:
    """Why torch cannot use CUDA, in torch's own words where it has them."""
    if torch.version.cuda is None:
        return f"this PyTorch ({torch.__version__}) is built without CUDA"
    try:
        torch.cuda.init()
    except Exception as e:  # e.g. "The NVIDIA driver on your system is too old (found version 11040)..."
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return "torch.cuda.is_available() is False"


def gpus_hidden() -> bool:
    """CUDA_VISIBLE_DEVICES set to nothing: the user hid the GPUs on purpose."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1")


def choose_device(requested: str | None) -> str:
    """--device, or the first GPU when torch can use one; refuses to fall back to the CPU silently."""
    if requested and not requested.startswith("cuda"):
        return requested
    if torch.cuda.is_available():
        return requested or "cuda:0"
    gpus = 0 if gpus_hidden() else nvidia_gpus()
    unusable = f"the machine has {gpus} NVIDIA GPU(s) but PyTorch cannot use them ({cuda_problem()})" if gpus else ""
    if requested:
        raise UserError(f"--device {requested}: " + (unusable or "no CUDA GPU is visible to PyTorch here") +
                        "; use --device cpu")
    if unusable:
        raise UserError(f"{unusable}; install a torch build the driver supports (scripts/install.sh), or pass "
                        f"--device cpu to train on the CPU")
    return "cpu"


def default_dtype(device: str) -> str:
    """The autocast dtype when --dtype is not given: bfloat16 on GPUs that compute it natively (compute
    capability 8.0, Ampere, and newer); float16 with the GradScaler on older ones (V100, T4), where
    bfloat16 is emulated and slow. The CPU trains in float32 whatever this says."""
    if device.startswith("cuda") and torch.cuda.get_device_capability(device)[0] < 8:
        return "float16"
    return "bfloat16"


def configure_precision(device: str, dtype: str) -> None:
    """--dtype float32 on a GPU: float32 matmuls may run as TF32 on GPUs that have it (Ampere and newer;
    a no-op before), ~8x the throughput for a 10-bit mantissa in the products, as Megatron and
    torchtitan train. bfloat16/float16 runs use autocast and are unaffected."""
    if device.startswith("cuda") and dtype == "float32":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
