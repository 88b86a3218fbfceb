"""Fixtures shared by every package's tests."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A shared 2-core machine makes per-example timing meaningless: no deadlines anywhere. Under CI
# (CI=true) hypothesis loads its own "ci" profile: derandomized, no deadline, no example database.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
if not os.environ.get("CI"):
    settings.load_profile("dev")

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
