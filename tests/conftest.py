"""Fixtures shared by every package's tests."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the checkout: real WARC files, labelled pages, the LDNOOBW list."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: CI and developers have ../shared beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def tests_data() -> Path:
    return REPO / "tests" / "data"
