"""Names for the temporary directories the CLIs write beside an output (`.NAME.partial-*`, `.replaced-*`,
`.removed-*`) or under the temp folder (`cm3-shard-sort-*`), and the safe cleaning of those a killed run
left behind (kill -9, a lost machine: 45 MB of token files each time, never reclaimed).

A name carries its owner: the host and the process id. A later run deletes a leftover only when its owner
is certainly gone: the same host and no process with that id. A directory of another host (a shared
filesystem) is never touched, nor one whose pid is alive (a reused pid only delays the cleaning). Names
written before the owner was recorded (`-{pid}-{hex}`) are deleted only when their pid is gone here and
they are older than a day.

It lives here, beside `cli_parser`, because image_tokenizer is the one package both pipeline/ and model/
may import; it needs the standard library only.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

LEGACY_AGE_S = 24 * 3600  # a name without its host: only this old, as no job runs for a day unseen
_HOST = re.sub(r"[^A-Za-z0-9.]", "", socket.gethostname())[:40] or "host"
_OWNED = re.compile(r"-(?:(?P<host>[A-Za-z0-9.]+)-)?(?P<pid>\d+)-[0-9a-f]{8}$")


def owned_suffix() -> str:
    """`{host}-{pid}-{8 hex}`: unique, and names the process that owns the directory."""
    return f"{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process; an absurd pid
        return pid > 0
    return True


def is_dead_leftover(path: Path, name: str | None = None) -> bool:
    """Whether `path`, named `...-{host}-{pid}-{hex}` (or the older `...-{pid}-{hex}`), belongs to a process
    of this host that no longer runs."""
    match = _OWNED.search(name or path.name)
    if match is None:
        return False
    pid = int(match["pid"])
    if match["host"] is not None:
        return match["host"] == _HOST and pid != os.getpid() and not _alive(pid)
    try:
        old = time.time() - path.lstat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False
    return old and pid != os.getpid() and not _alive(pid)


def clean_leftovers(directory: str | Path, prefixes: tuple[str, ...]) -> list[Path]:
    """Delete the entries of `directory` whose names start with one of `prefixes` and that a dead run of
    this host left behind; returns what was deleted. Never raises: cleaning is a courtesy."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefixes) or not is_dead_leftover(Path(entry.path)):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
