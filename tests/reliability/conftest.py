"""Fixtures for the reliability scenarios (helpers live in reliability_kit.py)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from reliability_kit import kill_group
from testkit import write_demo_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_demo_corpus(tmp_path_factory.mktemp("reliability_data"))


@pytest.fixture
def reap_groups():
    """Process groups a test started; SIGKILLed at teardown so a failing test leaves nothing running."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        kill_group(pgid)


@pytest.fixture(scope="session")
def measured():
    """Figures each scenario measured, printed at the end of the session (copied into README.md)."""
    figures: dict[str, str] = {}
    yield figures
    if figures:
        print("\n\nreliability figures:")
        for name, text in figures.items():
            print(f"  {name}: {text}")


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size, read_only=False)` mounts a real tmpfs of that size (e.g. "256k") and returns its folder; all
    are unmounted at teardown. Skips when not root or when mounting is not allowed (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)



@pytest.fixture
def copy(project, tmp_path, monkeypatch):
    """A private copy of the test module's `project` fixture (a real run, trained once per module), as the
    working directory: each test may damage its own."""
    import shutil

    root = tmp_path / "p"
    shutil.copytree(project, root)
    monkeypatch.chdir(root)
    return root
