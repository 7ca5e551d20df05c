"""Finding training files for the Train tab: ./dataset/*.jsonl, the bundled demo data, size and line count.
Plain functions; the form calls them from worker threads."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from dataset.disk import human_size

# The demo corpus comes from minimind_tui.demo (generated on first use under <root>/dataset/). Looked up
# lazily and tolerated when absent, so the app still starts in a checkout without it.
DEMO_MODULE = "minimind_tui.demo"


@dataclass(frozen=True)
class DemoData:
    pretrain: Path
    sft: Path
    pretrain_flags: tuple[str, ...]   # the demo recipe, as train flags
    sft_flags: tuple[str, ...]


def demo_data(root: Path) -> DemoData | None:
    """Write (once) and return the demo corpus; None when the demo module is unavailable or fails."""
    try:
        demo = importlib.import_module(DEMO_MODULE)
        pre, sft = demo.ensure_demo_data(root)
        return DemoData(Path(pre), Path(sft), tuple(getattr(demo, "PRETRAIN_FLAGS", ())),
                        tuple(getattr(demo, "SFT_FLAGS", ())))
    except Exception:
        return None


def demo_mode_of(root: Path, path: str) -> str | None:
    """"pretrain" or "sft" when `path` is one of the demo corpus files under <root>/dataset, else None."""
    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ImportError:
        return None
    full = Path(path) if Path(path).is_absolute() else Path(root) / path
    folder = Path(root) / "dataset"
    return {folder / demo.PRETRAIN_FILE: "pretrain", folder / demo.SFT_FILE: "sft"}.get(full)


def flag_values(flags: tuple[str, ...]) -> dict[str, str]:
    """["--batch_size", "32", ...] -> {"batch_size": "32"} (flags without a value are skipped)."""
    out = {}
    for i, flag in enumerate(flags):
        if flag.startswith("--") and i + 1 < len(flags) and not flags[i + 1].startswith("--"):
            out[flag[2:].replace("-", "_")] = flags[i + 1]
    return out


def local_datasets(root: Path) -> list[Path]:
    folder = Path(root) / "dataset"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def describe_file(path: Path) -> str:
    """'12.3 MB, 10,000 lines' — counts newlines in 1 MB chunks (a 1.6 GB file takes about a second)."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            return f"{path.name}: not a file"
        lines = 0
        last = b"\n"
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"  # a last line without newline still counts
    except FileNotFoundError:
        return "file not found"
    except PermissionError:
        return "no permission to read this file"
    return f"{human_size(size)}, {lines:,} lines"
