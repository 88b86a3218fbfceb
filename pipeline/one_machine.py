"""Running the job on this machine: a memory guard for the direct runner, whose memory follows the input
(Beam's FnApiRunner holds every shuffled PCollection in the launching process), and a Dask `LocalCluster`
with a memory limit per worker and spill-to-disk, started and stopped by `cm3-data run --runner dask`.

The factors are measured by `bench/job_memory.py` (the real job on WARC files of real pages whose kept rows
and encoded images grow with the input; peak RSS of every process of the run): see pipeline/README.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

MB = 1 << 20
GB = 1 << 30


@dataclass(frozen=True)
class Footprint:
    """Peak RSS of a run, all its processes together: `base_mb` + `mb_per_input_gb` x GB of input."""

    base_mb: float
    mb_per_input_gb: float

    def needs_mb(self, input_bytes: int) -> float:
        return self.base_mb + self.mb_per_input_gb * input_bytes / GB


# bench/job_memory.py, images on (the VQGAN encodes in every worker), 1x / 4x / 16x: the fit of the whole
# tree's peak RSS against the input's bytes (pipeline/README.md, "Memory on one machine")
DIRECT_FOOTPRINTS = {
    "in_memory": Footprint(base_mb=540, mb_per_input_gb=17_800),
    "multi_processing": Footprint(base_mb=1_540, mb_per_input_gb=33_200),  # 2 workers
}


def direct_mode(options) -> str | None:
    """'in_memory' or 'multi_processing' for the direct runner, None for any other runner."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    if name.rsplit(".", 1)[-1] not in ("DirectRunner", "SwitchingDirectRunner"):
        return None
    mode = options.view_as(DirectOptions).direct_running_mode
    return "multi_processing" if mode == "multi_processing" else "in_memory"


def available_memory() -> int:
    """Bytes of memory available to a new job now (MemAvailable: free + reclaimable cache)."""
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise OSError("cannot tell the available memory")


def memory_problem(mode: str, input_bytes: int, available: int) -> str | None:
    """One line when a direct-runner job on `input_bytes` of input would need more than `available`."""
    needs = DIRECT_FOOTPRINTS[mode].needs_mb(input_bytes)
    if needs <= available / MB:
        return None
    workers = max(1, (os.cpu_count() or 2) - 1)
    per_worker = max(1, math.floor(available * 0.8 / workers / GB))
    return (
        f"{input_bytes / GB:.2f} GB of input needs about {needs / 1024:.1f} GB of memory on the direct runner "
        f"({mode}: it holds every shuffle in memory), {available / GB:.1f} GB is available; use "
        f"--runner dask --workers {workers} --worker-memory {per_worker}GB (spills to disk), or Dataflow / "
        "Flink / Spark for a crawl (dataflow/README.md); --force runs it anyway"
    )


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """'2GB' -> 2_000_000_000, '512MiB' -> 536_870_912, '1.5g' -> 1_500_000_000 (Dask's own spelling)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"expected a size such as 2GB or 512MB, got {text!r}")
    unit = match.group(2).lower().removesuffix("b")
    return int(float(match.group(1)) * _UNITS[unit])


# Dask's memory thresholds, as fractions of --worker-memory: managed data (task results, i.e. shuffle
# partitions) goes to disk from `target`; from `spill` of the process's RSS it spills until under target; at
# `pause` the worker stops taking tasks; the nanny restarts it at `terminate`.
SPILL_FRACTIONS = {"target": 0.5, "spill": 0.6, "pause": 0.8, "terminate": 0.95}


def pickled_size(value: object) -> int:
    """Bytes of `value` as Dask would spill it. Dask's own estimate of an object it does not know is
    `sys.getsizeof`, which sees none of what it refers to: a list of ten Beam `WindowedValue`s holding 1 MB
    each weighs 936 bytes to it, so without this, the shuffle partitions of Beam's Dask runner would never
    reach the spill target however large they grow."""
    import pickle

    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # unpicklable here (Dask then keeps it in memory anyway)
        return sys.getsizeof(value)


def dask_setup(worker=None) -> None:
    """Run by each worker of `local_dask_cluster` at start (Dask's `preload`; `dask worker --preload
    pipeline.one_machine` for a cluster of your own): objects Dask does not know are weighed pickled."""
    from apache_beam.utils.windowed_value import WindowedValue
    from dask.sizeof import sizeof

    # WindowedValue by name as well: Dask caches the weigher it found for a class on first use
    sizeof.register((object, WindowedValue))(pickled_size)


def wants_local_dask(options) -> bool:
    """The Dask runner without a cluster address: cm3-data starts the cluster itself."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or ""
    name = runner if isinstance(runner, str) else type(runner).__name__
    return "Dask" in name and not dask_address(options)


def dask_address(options) -> str | None:
    """--dask_client_address, read through Beam's DaskOptions (whose field is `address`: once that class is
    imported, the flag no longer appears under its own name among the options)."""
    from apache_beam.runners.dask.dask_runner import DaskOptions

    return options.view_as(DaskOptions).address


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def default_worker_memory(workers: int, available: int) -> int:
    """A share of what is available now, leaving a fifth to the launcher and the system."""
    return max(256 * MB, int(available * 0.8 / workers))


@contextlib.contextmanager
def local_dask_cluster(workers: int, worker_memory: int, spill_parent: str | None = None) -> Iterator[str]:
    """A `distributed.LocalCluster` of `workers` processes (one thread each, loopback only), each limited to
    `worker_memory` bytes with spill-to-disk into a temporary directory under `spill_parent` (the output's
    parent, else the system's temp dir); yields the scheduler address. Closed, and the spill directory
    removed, however the block ends (a failure, Ctrl-C)."""
    import dask
    from distributed import LocalCluster

    memory = {f"distributed.worker.memory.{name}": fraction for name, fraction in SPILL_FRACTIONS.items()}
    with (
        tempfile.TemporaryDirectory(prefix=".cm3-dask-spill-", dir=spill_parent) as spill,
        dask.config.set({**memory, "temporary-directory": spill}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=worker_memory,
            local_directory=spill,
            host="127.0.0.1",
            dashboard_address=":0",  # the scheduler's HTTP server on a free port (it warns if 8787 is taken)
            scheduler_kwargs={"dashboard": False},
            silence_logs=40,
            preload=["pipeline.one_machine"],
        ) as cluster,
    ):
        yield cluster.scheduler_address


def spilled_bytes(address: str) -> int:
    """Bytes the cluster's workers wrote to their spill directories so far."""
    from distributed import Client

    def written(dask_worker) -> float:
        metrics = getattr(dask_worker.data, "cumulative_metrics", {})
        return sum(
            value for (label, unit), value in metrics.items() if label == "disk-write" and unit == "bytes"
        )

    with Client(address, timeout=30) as client:
        return int(sum(client.run(written).values()))
