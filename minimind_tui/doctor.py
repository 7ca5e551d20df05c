"""`minimind-tui doctor`: what to run first on a fresh box. Each check is one line, OK / WARN / FAIL, and a
WARN or FAIL says what to do.

Python; torch and the CUDA version it was built for against the newest one the driver supports; every GPU
torch sees (memory, compute capability, bf16, flash attention) with NVML's readings of the same GPU, matched
by UUID because NVML's numbering is not cuda:N's; NCCL; free disk where runs, weights and caches go, and
free RAM; whether the cache folders are writable; where tokenised data is cached. `doctor --smoke` (smoke.py)
then trains for real. The machine is read through injectable pieces (the NVML module, the environment, the
project folder) so tests drive every branch without a GPU.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minimind_tui.gpu import torch_build
from minimind_tui.gpu.mapping import cuda_devices, order_is_certain
from minimind_tui.gpu.monitor import GpuInfo, GpuReading
from minimind_tui.gpu.nvml import NvmlMonitor

OK, WARN, FAIL = "OK", "WARN", "FAIL"
_RANK = {OK: 0, WARN: 1, FAIL: 2}
GiB = 1024**3
MIN_PYTHON, MIN_TORCH = (3, 10), (2, 6)
DISK_WARN_GB, DISK_FAIL_GB = 10.0, 1.0   # a 26M run keeps ~1 GB of checkpoints; token caches are ~2 bytes/token
RAM_WARN_GB, RAM_FAIL_GB = 4.0, 1.0


@dataclass
class Check:
    area: str
    status: str
    message: str
    advice: str = ""   # what to do about a WARN or FAIL
    data: dict = field(default_factory=dict)


def worst(checks) -> str:
    return max((c.status for c in checks), key=_RANK.__getitem__, default=OK)


def run_checks(root: Path = Path("."), nvml: Any = None, env: Mapping[str, str] | None = None) -> list[Check]:
    env = os.environ if env is None else env
    monitor = NvmlMonitor(nvml=nvml)
    try:
        reading, driver_cuda = monitor.read(), monitor.cuda_driver_version()
    finally:
        monitor.close()
    torch, torch_check = check_torch()
    return [check_python(), torch_check, check_driver(torch, reading, driver_cuda), *check_gpus(torch, reading, env),
            check_nccl(torch), *check_storage(Path(root)), check_ram()]


# ----- Python and torch -----
def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", FAIL, f"{version} ({sys.executable})", "minimind-tui needs Python 3.10 or newer")
    return Check("python", OK, f"{version} ({sys.executable})", data={"version": version})


def check_torch() -> tuple[Any, Check]:
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising OSError on a missing library
        return None, Check("torch", FAIL, f"cannot be imported: {e}", "run scripts/install.sh")
    build = torch.version.cuda
    text = f"{torch.__version__}, " + (f"built for CUDA {build}" if build else "CPU-only build")
    data = {"version": torch.__version__, "cuda_build": build}
    numbers = torch_build.version_tuple(torch.__version__)
    if numbers[:2] < MIN_TORCH:
        return torch, Check("torch", WARN, text, "minimind-tui needs torch 2.6 or newer: run scripts/install.sh",
                            data)
    return torch, Check("torch", OK, text, data=data)


def _cuda_available(torch) -> tuple[bool, str]:
    """torch.cuda.is_available(), and the warning torch gives when it says no (why the driver refused)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = bool(torch.cuda.is_available())
    return available, "; ".join(str(w.message).splitlines()[0] for w in caught)


# ----- the driver against torch's CUDA build -----
def check_driver(torch, reading: GpuReading, driver_cuda: str | None) -> Check:
    available, why_not = _cuda_available(torch) if torch is not None else (False, "")
    if reading.unavailable:
        if available:
            return Check("driver", WARN, f"torch sees {torch.cuda.device_count()} GPU(s), but {reading.unavailable}",
                         "GPU readings (memory in use, utilisation) need NVML: pip install nvidia-ml-py")
        return Check("driver", WARN, f"no NVIDIA GPU: {reading.unavailable}; training runs on the CPU",
                     "expected a GPU? check that `nvidia-smi` lists it (driver installed and loaded)",
                     {"gpus": 0})
    driver = reading.driver or "?"
    supports = f"driver {driver} supports CUDA {driver_cuda or '?'}"
    data = {"driver": reading.driver, "driver_cuda": driver_cuda, "gpus": len(reading.gpus)}
    if torch is None:
        return Check("driver", FAIL, f"{supports}; torch is missing", _install_advice(reading), data)
    build = torch.version.cuda
    data["torch_cuda"] = build
    if not build:
        return Check("driver", FAIL, f"{supports}, but torch is a CPU-only build: {len(reading.gpus)} GPU(s) unused",
                     _install_advice(reading), data)
    if driver_cuda and _newer_major(build, driver_cuda):
        return Check("driver", FAIL, f"{supports}; torch was built for CUDA {build}, which needs a newer driver",
                     _install_advice(reading), data)
    if not available:
        return Check("driver", FAIL, f"{supports}; torch (CUDA {build}) cannot use the GPU"
                     + (f": {why_not}" if why_not else ""), _install_advice(reading), data)
    compat = (" (by CUDA minor version compatibility)" if driver_cuda and
              torch_build.version_tuple(build)[:2] > torch_build.version_tuple(driver_cuda)[:2] else "")
    return Check("driver", OK, f"{supports}; torch built for CUDA {build}{compat}", data=data)


def _newer_major(build: str, driver_cuda: str) -> bool:
    return torch_build.version_tuple(build)[0] > torch_build.version_tuple(driver_cuda)[0]


def _install_advice(reading: GpuReading) -> str:
    try:
        build, why = torch_build.choose(reading.driver or "")
    except (torch_build.NoBuild, ValueError) as e:
        return str(e)
    return f"run scripts/install.sh: it installs {build.requirement} from the {build.tag} index ({why})"


# ----- every GPU, torch's view and NVML's -----
def check_gpus(torch, reading: GpuReading, env: Mapping[str, str]) -> list[Check]:
    checks = []
    visible = {k: env[k] for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER") if k in env}
    if visible:
        checks.append(Check("visible", OK, ", ".join(f"{k}={v}" for k, v in visible.items()), data=visible))
    if torch is None or not _cuda_available(torch)[0]:
        # torch cannot use them (the driver line says why); still list what NVML sees.
        return checks + [Check(f"GPU {g.index}", WARN, _nvml_text(g), "not usable by torch: see the driver line",
                               {"nvml_index": g.index, "uuid": g.uuid}) for g in reading.gpus]
    mapped = cuda_devices(reading, env)
    certain = order_is_certain(reading, env)
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpu = _nvml_gpu(props, reading) or (mapped[i].gpu if i < len(mapped) and certain else None)
        checks.append(_gpu_check(torch, i, props, gpu))
    return checks


def _nvml_gpu(props, reading: GpuReading) -> GpuInfo | None:
    """The NVML GPU with this device's UUID (torch >= 2.1 reports it; MIG instances match their GPU)."""
    uuid = _bare_uuid(getattr(props, "uuid", None))
    if not uuid:
        return None
    for g in reading.gpus:
        if _bare_uuid(g.uuid) == uuid or any(_bare_uuid(m) == uuid for m in g.mig_uuids):
            return g
    return None


def _bare_uuid(uuid) -> str:
    text = str(uuid or "").lower()
    for prefix in ("gpu-", "mig-"):
        text = text.removeprefix(prefix)
    return text


def _gpu_check(torch, i: int, props, gpu: GpuInfo | None) -> Check:
    cc = (props.major, props.minor)
    bf16 = cc >= (8, 0)  # native bf16 from Ampere; older GPUs emulate it slowly
    flash_built = getattr(torch.backends.cuda, "is_flash_attention_available", lambda: True)()
    flash = flash_built and cc >= (8, 0)  # PyTorch's FlashAttention-2 kernels need sm80+
    total = props.total_memory / GiB
    text = (f"{props.name} · {total:.1f} GiB · compute {cc[0]}.{cc[1]} · bf16 {'yes' if bf16 else 'no'} · "
            f"flash attention {'yes' if flash else 'no'}")
    data = {"cuda": i, "name": props.name, "total_gb": round(total, 2), "compute_capability": f"{cc[0]}.{cc[1]}",
            "bf16": bf16, "flash_attention": flash}
    status, advice = OK, ""
    if gpu is None:
        text += " · NVML: not matched"
        status, advice = WARN, "NVML does not show which GPU this is: memory and utilisation readings unavailable"
    else:
        text += f" · NVML GPU {gpu.index}: {_nvml_text(gpu, with_name=False)}"
        data.update(nvml_index=gpu.index, uuid=gpu.uuid, pci_bus_id=gpu.pci_bus_id, used_gb=gpu.mem_used_gb,
                    util_pct=gpu.util_pct, temp_c=gpu.temp_c)
        if gpu.free_gb is not None and gpu.mem_total_gb and gpu.free_gb < 0.5 * gpu.mem_total_gb:
            status = WARN
            advice = (f"{gpu.mem_used_gb:.1f} GB already in use by other processes: less room for training "
                      f"(`nvidia-smi` shows whose)")
    if cc < (5, 0):
        status, advice = FAIL, f"compute capability {cc[0]}.{cc[1]} is older than any current PyTorch build runs"
    elif not bf16:
        status = WARN
        advice = advice or "no native bf16 on this GPU: train with --dtype float16 (the loss scaler is used)"
    return Check(f"cuda:{i}", status, text, advice, data)


def _nvml_text(g: GpuInfo, with_name: bool = True) -> str:
    if g.error:
        return f"{g.error}"
    parts = [g.name or "?"] if with_name else []
    if g.pci_bus_id:
        parts.append(g.pci_bus_id)
    if g.mem_used_gb is not None and g.mem_total_gb is not None:
        parts.append(f"{g.mem_used_gb:.1f}/{g.mem_total_gb:.1f} GB used")
    if g.util_pct is not None:
        parts.append(f"{g.util_pct:.0f}% busy")
    if g.temp_c is not None:
        parts.append(f"{g.temp_c:.0f} °C")
    return ", ".join(parts)


# ----- NCCL -----
def check_nccl(torch) -> Check:
    if torch is None:
        return Check("nccl", WARN, "unknown: torch is missing", "run scripts/install.sh")
    dist = torch.distributed
    if not dist.is_available():
        return Check("nccl", WARN, "this torch has no torch.distributed: one process only",
                     "multi-GPU training needs a torch with distributed support (the PyPI builds have it)")
    if not _cuda_available(torch)[0]:
        gloo = dist.is_gloo_available()
        return Check("nccl", OK if gloo else WARN, "no GPU: several CPU processes would use Gloo" +
                     ("" if gloo else ", which this torch lacks"), data={"gloo": gloo})
    if not dist.is_nccl_available():
        return Check("nccl", WARN if torch.cuda.device_count() < 2 else FAIL, "this torch has no NCCL",
                     "multi-GPU training needs NCCL: install a Linux CUDA build of torch (scripts/install.sh)")
    version = ".".join(map(str, torch.cuda.nccl.version()))
    return Check("nccl", OK, f"NCCL {version} for {torch.cuda.device_count()} GPU(s)", data={"version": version})


# ----- disk, caches, RAM -----
def cache_locations(root: Path, env: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Where training writes: runs and weights under the project, the token and index caches, and the
    compile caches (--compile)."""
    from dataset.jsonl import cache_dir
    from dataset.token_cache import default_root

    env = os.environ if env is None else env
    user = env.get("USER") or env.get("LOGNAME") or "user"
    return {
        "runs": root / "runs",
        "weights (out)": root / "out",
        "token cache": default_root(),
        "index cache": cache_dir() / "index",
        "torch.compile cache": Path(env.get("TORCHINDUCTOR_CACHE_DIR")
                                    or Path(tempfile.gettempdir()) / f"torchinductor_{user}"),
        "triton cache": Path(env.get("TRITON_CACHE_DIR") or Path.home() / ".triton" / "cache"),
    }


def _existing(path: Path) -> Path:
    """The folder itself, or its nearest existing parent (where it would be created)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_storage(root: Path) -> list[Check]:
    places = cache_locations(root)
    checks = []
    unwritable = [f"{name} ({path})" for name, path in places.items() if not os.access(_existing(path), os.W_OK)]
    if unwritable:
        checks.append(Check("writable", FAIL, "cannot write to " + ", ".join(unwritable),
                            "fix the permissions, or point the caches elsewhere (MINIMIND_CACHE=DIR; --root DIR "
                            "for runs and weights; TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR)"))
    else:
        checks.append(Check("writable", OK, "runs, weights and cache folders are writable",
                            data={k: str(v) for k, v in places.items()}))
    token_cache = places["token cache"]
    caches = [p for p in token_cache.iterdir() if p.is_dir()] if token_cache.is_dir() else []
    size = sum(f.stat().st_size for p in caches for f in p.rglob("*") if f.is_file()) / GiB
    checks.append(Check("token cache", OK, f"{token_cache} ({len(caches)} dataset(s), {size:.2f} GiB); "
                        f"MINIMIND_CACHE=DIR moves it", data={"path": str(token_cache), "datasets": len(caches),
                                                             "size_gb": round(size, 3)}))
    by_device: dict[int, list[str]] = {}
    paths: dict[int, Path] = {}
    for name, path in places.items():
        where = _existing(path)
        dev = where.stat().st_dev
        by_device.setdefault(dev, []).append(name)
        paths.setdefault(dev, where)
    for dev, names in by_device.items():
        usage = shutil.disk_usage(paths[dev])
        free = usage.free / GiB
        text = f"{free:.1f} GiB free of {usage.total / GiB:.0f} on the disk of {', '.join(names)}"
        status = FAIL if free < DISK_FAIL_GB else WARN if free < DISK_WARN_GB else OK
        advice = "" if status == OK else ("free some space: checkpoints (keep_last), token caches and weights "
                                          "need a few GB")
        checks.append(Check("disk", status, text, advice, {"path": str(paths[dev]), "free_gb": round(free, 2),
                                                           "holds": names}))
    return checks


def check_ram() -> Check:
    import psutil

    vm = psutil.virtual_memory()
    free = vm.available / GiB
    status = FAIL if free < RAM_FAIL_GB else WARN if free < RAM_WARN_GB else OK
    return Check("ram", status, f"{free:.1f} GiB available of {vm.total / GiB:.1f}",
                 "" if status == OK else "little free RAM: use --num_workers 0 and smaller batches, or stop other "
                                         "processes", {"available_gb": round(free, 2)})


# ----- the report -----
def format_report(checks: list[Check]) -> str:
    width = max(len(c.area) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.area:<{width}}  {c.message}")
        if c.advice and c.status != OK:
            lines.append(f"{'':<4}  {'':<{width}}  -> {c.advice}")
    return "\n".join(lines)


def as_json(checks: list[Check], smoke: list | None = None) -> dict:
    out = {"status": worst(checks), "checks": [asdict(c) for c in checks]}
    if smoke is not None:
        out["smoke"] = [asdict(s) for s in smoke]
    return out
