"""What a killed run leaves (`.NAME.partial-*` beside an output, `cm3-shard-sort-*` spill folders) is
cleaned by a later run once its owner is certainly gone, and never while it runs."""

import os
import subprocess
import sys
import time

from image_tokenizer.leftovers import LEGACY_AGE_S, clean_leftovers, is_dead_leftover, owned_suffix


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _host() -> str:
    return owned_suffix().rsplit("-", 2)[0]


def test_a_dead_runs_directory_is_cleaned_and_a_live_ones_kept(tmp_path):
    dead = tmp_path / f".out.partial-{_host()}-{_dead_pid()}-0123abcd"
    live = tmp_path / f".out.partial-{owned_suffix()}"  # this process: running
    parent = tmp_path / f".out.partial-{_host()}-{os.getppid()}-0123abcd"  # pytest's parent: running
    other_host = tmp_path / f".out.partial-elsewhere.example-{_dead_pid()}-0123abcd"  # a shared filesystem
    unrelated = tmp_path / f".other.partial-{_host()}-{_dead_pid()}-0123abcd"
    for path in (dead, live, parent, other_host, unrelated):
        (path / "data").mkdir(parents=True)
        (path / "data" / "tokens.u32").write_bytes(b"\0" * 64)
    assert clean_leftovers(tmp_path, (".out.partial-",)) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, parent, other_host, unrelated)
    )


def test_a_name_without_its_host_waits_a_day(tmp_path):
    old = tmp_path / f".out.partial-{_dead_pid()}-0123abcd"
    old.mkdir()
    assert not is_dead_leftover(old)
    a_day_ago = time.time() - LEGACY_AGE_S - 60
    os.utime(old, (a_day_ago, a_day_ago))
    assert is_dead_leftover(old)
    assert not is_dead_leftover(tmp_path / "out.partial")  # no owner in the name: never
