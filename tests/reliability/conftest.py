"""Fixtures for the reliability scenarios (helpers live in reliability_kit.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_kit import kill_group  # noqa: E402
from testkit import write_demo_corpus  # noqa: E402


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
