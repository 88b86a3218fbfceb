"""The lock (`dataflow/constraints.txt`): exact versions for every package the project installs, no hosts in
it, and the same versions wherever it is used (the Makefile's venv, CI through make, the worker image)."""

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "dataflow" / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.]+)$")


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"not a plain name==version pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_the_lock_is_plain_pins_without_hosts_or_options():
    text = LOCK.read_text()
    assert "://" not in text and "--" not in text.replace("# ", "") and "@" not in text
    assert len(locked()) > 50


def test_every_dependency_the_project_names_is_locked():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as the lock
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    named = [*project["dependencies"], *project["optional-dependencies"]["test"], "taming-transformers"]
    pins = locked()
    for requirement in map(Requirement, named):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in the lock: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_the_worker_image_and_the_makefile_use_the_lock():
    dockerfile = (REPO / "dataflow" / "Dockerfile").read_text()
    beam = re.search(r"^ARG BEAM_VERSION=(\S+)$", dockerfile, re.M)[1]
    assert beam == locked()["apache-beam"]
    assert dockerfile.count("-c dataflow/constraints.txt") == 2
    makefile = (REPO / "Makefile").read_text()
    assert "LOCK   := dataflow/constraints.txt" in makefile
    assert re.search(r"lxml==(\S+)", makefile)[1] == locked()["lxml"]


@pytest.mark.skipif(bool(os.environ.get("CM3_UNLOCKED")), reason="make test-latest runs without the lock")
def test_this_environment_is_the_lock():
    """What `make setup` installed: a venv made by hand or upgraded since fails here, naming the package."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differs = {
        name: (version, installed.get(name))
        for name, version in locked().items()
        if installed.get(name, "").split("+")[0] != version
    }
    assert not differs, f"installed versions differ from the lock (locked, installed): {differs}"
