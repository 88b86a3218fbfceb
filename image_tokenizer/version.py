"""The project's one version number: pyproject's `version`, as the installed distribution reports it.

It lives here because image_tokenizer is the one package that both pipeline/ (`cm3-data`) and model/
(`cm3-train`, `cm3-generate`) may import (the layout rule keeps pipeline and model apart), and this module
needs the standard library only: `--version` loads neither torch nor Beam.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "cm3-data"


def package_version() -> str:
    """The installed `cm3-data` version; "unknown" for a source tree that was never pip-installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line(prog: str) -> str:
    """What `PROG --version` prints, e.g. "cm3-train 0.1.0"."""
    return f"{prog} {package_version()}"
