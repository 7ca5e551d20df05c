"""Fixtures for the reliability scenarios (helpers live in reliability_kit.py)."""
from __future__ import annotations

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
