"""Finding training files for the Train tab: ./dataset/*.jsonl, the bundled demo data, size and line count.
Plain functions; the form calls them from worker threads."""
from __future__ import annotations

import importlib
from pathlib import Path

# The lead's demo module (minimind_tui.demo) generates the bundled demo corpus. Its API may not exist yet
# in a given checkout, so it is looked up lazily by these names and its absence is tolerated.
DEMO_MODULE = "minimind_tui.demo"
DEMO_PATH_FUNCTIONS = ("demo_dataset_path", "dataset_path", "demo_data_path")


def demo_dataset(mode: str, root: Path | None = None) -> Path | None:
    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ImportError:
        return None
    for name in DEMO_PATH_FUNCTIONS:
        fn = getattr(demo, name, None)
        if callable(fn):
            for call in (lambda: fn(mode, root=root), lambda: fn(mode), lambda: fn()):
                try:
                    path = call()
                except TypeError:
                    continue
                except Exception:
                    return None
                return Path(path) if path else None
    return None


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


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
