"""One rule for the output directories of the CLIs: a non-empty output is refused unless `--overwrite`,
which replaces it whole. A new output is built in a temporary directory beside it and renamed into place
when complete, so a failed or interrupted command leaves neither half an output nor a damaged previous one.
`--overwrite` only ever replaces a directory that holds an earlier output of the same kind (its `marker`
file), never an unrelated one named by mistake."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from image_tokenizer.leftovers import clean_leftovers, owned_suffix

T = TypeVar("T")


class OutputError(ValueError):
    """An output directory that may not be written (one line for the CLI)."""


def is_nonempty(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.iterdir())


def check_output(path: str | Path, overwrite: bool, markers: tuple[str, ...], flag: str = "--output") -> None:
    """Refuses a file, a non-empty directory without `overwrite`, and (with it) a non-empty directory
    holding none of `markers`, the files an earlier output of this kind has."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a directory")
    if not is_nonempty(path):
        return
    if not overwrite:
        raise OutputError(
            f"{flag} {path} is not empty; pass --overwrite to replace it whole, or choose another {flag}"
        )
    if not any((path / marker).exists() for marker in markers):
        raise OutputError(
            f"{flag} {path} holds no earlier output ({' or '.join(markers)}), so --overwrite will not "
            "replace it; choose another place, or delete it yourself"
        )


def check_apart(out: str | Path, inputs: dict[str, str | Path], flag: str = "--output") -> None:
    """Replacing `out` must not delete an input: refuses an input that is `out` or lies inside it."""
    resolved = Path(out).resolve()
    for name, path in inputs.items():
        source = Path(path).resolve()
        if source == resolved or resolved in source.parents:
            raise OutputError(f"{flag} {out} would replace {name} {path}; write the output elsewhere")


SIBLINGS = ("partial", "replaced", "removed")


def _sibling(path: Path, what: str) -> Path:
    """`.NAME.{what}-{host}-{pid}-{hex}`: the owner in the name, so a later run can clean it if killed."""
    return path.with_name(f".{path.name}.{what}-{owned_suffix()}")


def build_output(path: str | Path, build: Callable[[Path], T]) -> T:
    """`build(tmp)` writes the output into a fresh directory beside `path`, which then takes its place
    (call `check_output` first). An exception leaves `path` as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(path.parent, tuple(f".{path.name}.{what}-" for what in SIBLINGS))  # of killed runs
        tmp = _sibling(path, "partial")
        tmp.mkdir()
    except OSError as e:
        raise OutputError(f"cannot create {path}: {e.strerror}") from None
    try:
        result = build(tmp)
        if path.exists():
            old = _sibling(path, "replaced")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def remove_output(path: str | Path) -> None:
    """Deletes a directory so that a cut deletion leaves nothing under its name: renamed aside first."""
    path = Path(path)
    aside = _sibling(path, "removed")
    os.rename(path, aside)
    shutil.rmtree(aside)


__all__ = ["OutputError", "build_output", "check_apart", "check_output", "is_nonempty", "remove_output"]
