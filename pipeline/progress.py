"""Progress of a running job, through a side channel every local runner allows: Beam's DirectRunner (either
mode) reports no metrics until the job ends, and the Dask runner none at all, but every process that runs
our steps can write a small file. When `cm3-data run` sets CM3_PROGRESS_DIR (runs whose workers are on this
machine), each process adds its counts (the same `Count` events as the report) to its own JSON file, written
once a second when they changed; the launcher sums the files and prints one line every 15 s. Elsewhere (Dataflow, a remote
Dask cluster) nothing is written: the runner's own console shows progress there.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline import counters

ENV = "CM3_PROGRESS_DIR"
WRITE_INTERVAL = 1.0  # seconds between two writes of a process's file
LINE_INTERVAL = 15.0  # seconds between two progress lines
INPUT_BYTES = "progress.input_bytes"  # bytes of the input files read to their end
SHARDS = "progress.shards"


class _ProcessCounts:
    """This process's counts, written to DIR/<pid>.json (atomically) by a daemon thread every
    WRITE_INTERVAL s when they changed, so that adding a count costs no file write."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = Path(directory) / f"{os.getpid()}.json"
        self.pid = os.getpid()
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.changed = False
        threading.Thread(target=self._write_every_interval, daemon=True).start()

    def add(self, counts: Mapping[str, int]) -> None:
        with self.lock:
            self.counts.update(counts)
            self.changed = True

    def _write_every_interval(self) -> None:
        while True:
            time.sleep(WRITE_INTERVAL)
            if _process is not self:  # a later job of this process writes its own file, by its own thread
                return
            with self.lock:
                if not self.changed:
                    continue
                text, self.changed = json.dumps(self.counts), False
            partial = self.path.with_suffix(".tmp")
            try:
                partial.write_text(text)
                os.replace(partial, self.path)
            except OSError:  # the launcher removed the directory (the job ended): progress is optional
                return


_process: _ProcessCounts | None = None


def add(counts: Mapping[str, int]) -> None:
    """Count progress in this process (a no-op unless the launcher asked for progress files)."""
    global _process
    directory = os.environ.get(ENV)
    if not directory:
        return
    if _process is None or _process.pid != os.getpid() or _process.directory != directory:
        _process = _ProcessCounts(
            directory
        )  # a forked child, or a later job of this process, starts its own file
    _process.add(counts)


def file_read(path: str) -> None:
    """Count an input file read to its end, by its size (for the share of the input read)."""
    if not os.environ.get(ENV):
        return
    from apache_beam.io.filesystems import FileSystems

    try:
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:  # progress only: a file that cannot be listed now counts nothing
        return
    add({INPUT_BYTES: size})


def totals(directory: str) -> collections.Counter[str]:
    """The counts of every process so far (a file being replaced or half-written is skipped this time)."""
    summed: collections.Counter[str] = collections.Counter()
    for path in Path(directory).glob("*.json"):
        try:
            summed.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return summed


def pages_done(counts: Mapping[str, int]) -> int:
    """Pages through the minimizer (each page passes it once: ok or a typed error)."""
    return sum(
        n
        for name, n in counts.items()
        if name == counters.MINIMIZE_OK or name.startswith(counters.MINIMIZE_ERROR)
    )


def progress_line(counts: Mapping[str, int], elapsed: float, pages_per_s: float, input_bytes: int) -> str:
    """'12m05s: 48,210 pages (66.5/s), 9,870 kept by C4; images 2,310 obtained, 2,004 encoded; 3 shards
    written; input 41% read (1.4 GB of 3.4 GB), about 17m left' (a file counts as read once read to its end;
    a runner that computes a step twice, as Beam's Dask runner does for side inputs, counts it twice)."""
    minutes, seconds = divmod(int(elapsed), 60)
    line = f"{minutes}m{seconds:02d}s: {pages_done(counts):,} pages ({pages_per_s:.1f}/s), "
    line += f"{counts.get(counters.C4_KEPT, 0):,} kept by C4"
    obtained = sum(n for name, n in counts.items() if name.startswith(counters.IMAGES_SOURCE))
    encoded = counts.get(counters.IMAGES_ENCODED, 0)
    if obtained or encoded:
        line += f"; images {obtained:,} obtained, {encoded:,} encoded"
    line += f"; {counts.get(SHARDS, 0)} shards written"
    read = counts.get(INPUT_BYTES, 0)
    if input_bytes:
        share = min(read / input_bytes, 1.0)
        line += f"; input {share:.0%} read ({format_bytes(read)} of {format_bytes(input_bytes)})"
        if 0 < share < 1:
            line += f", about {format_duration(elapsed / share - elapsed)} left"
    return line


def format_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)}m"


class Poller:
    """The launcher's side: every LINE_INTERVAL s, one line from the summed files (or the elapsed time while
    none has been written yet), until stopped."""

    def __init__(self, directory: str | None, input_bytes: int):
        self.directory = directory
        self.input_bytes = input_bytes
        self.interval = LINE_INTERVAL
        self.stop = threading.Event()
        self.started = time.monotonic()
        self._pages = 0
        self._at = self.started

    def line(self) -> str:
        now = time.monotonic()
        if self.directory is None:
            return f"still running: {now - self.started:.0f}s (the workers are elsewhere: see the runner's console)"
        counts = totals(self.directory)
        if not counts:
            return f"still running: {now - self.started:.0f}s (no progress reported yet)"
        pages = pages_done(counts)
        rate = (pages - self._pages) / max(now - self._at, 1e-9)
        self._pages, self._at = pages, now
        return progress_line(counts, now - self.started, rate, self.input_bytes)

    def run(self, write) -> None:
        while not self.stop.wait(self.interval):
            write(f"[cm3-data] {self.line()}")
