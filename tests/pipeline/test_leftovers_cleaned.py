"""A run killed with -9 leaves its spill folders and its partial output; the next run cleans them (their
owner, named in them, is gone) and leaves those of running jobs alone."""

import os
import subprocess
import sys

from pipeline import shards


def test_a_killed_sort_leaves_a_spill_folder_that_the_next_process_cleans(tmp_path):
    script = (
        "import os; from pipeline.shards import sorted_rows; "
        "rows = ({'id': f'{i:016x}', 'url': 'u', 'source': 'warc', 'html': 'x' * 100} for i in range(100, 0, -1)); "
        "it = sorted_rows(rows, buffer_bytes=500); next(it); os._exit(9)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "TMPDIR": str(tmp_path)}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    (left,) = list(tmp_path.iterdir())
    assert left.name.startswith("cm3-shard-sort-") and any(left.iterdir())
    cleaner = "from pipeline.shards import sorted_rows; assert list(sorted_rows([])) == []"
    subprocess.run([sys.executable, "-c", cleaner], env=env, check=True)
    assert list(tmp_path.iterdir()) == []


def test_a_new_partial_output_cleans_the_partials_of_killed_runs_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = shards.partial_output(str(tmp_path / "out")).rsplit("/", 1)[1].split("-")[1]
    killed = tmp_path / f".out.partial-{host}-{dead.pid}-0123abcd"
    running = tmp_path / f".out.partial-{host}-{os.getppid()}-0123abcd"
    for path in (killed, running):
        (path / "data").mkdir(parents=True)
    partial = shards.partial_output(str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name]
    assert partial.startswith(str(tmp_path / ".out.partial-"))
