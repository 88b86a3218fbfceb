"""The data job on Beam's DaskRunner with real worker processes: a `distributed.LocalCluster` of 2 worker
processes (one thread each) on loopback, a fresh cluster per size. For copies of the sample corpus at N and
4N pages it prints each worker process's peak RSS (ru_maxrss, asked of every worker after the job), the time,
and whether the shards, report and manifest are byte-identical to the DirectRunner's on the same input (the
baseline, run in the same script).

    .venv/bin/python bench/dask_workers.py [--copies 4] [--no-images]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import make_corpus  # noqa: E402
from dataflow import local_dask_cluster  # noqa: E402
from pipeline.cli import main as cli_main  # noqa: E402
from pipeline.shards import report_json_path  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_job(inputs: list[str], output: Path, extra: list[str]) -> float:
    args = ["run", "--output", str(output), "--no-fetch", "--quiet"]
    for path in inputs:
        args += ["--input", path]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if cli_main(args + extra) != 0:
            raise SystemExit(f"run failed: {extra}")
    return time.perf_counter() - start


def output_files(output: Path) -> dict[str, bytes]:
    """Every file of an output (data/ and _meta/), by its path inside it, less the run's duration in the
    reports (the one value that differs between runs)."""
    files = {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}
    report = json.loads(files["_meta/report.json"])
    report.get("run", {}).pop("duration_s", None)
    files["_meta/report.json"] = json.dumps(report).encode()
    files["_meta/report.html"] = re.sub(
        rb"<tr><td>duration</td><td class=v>[^<]*</td></tr>", b"", files["_meta/report.html"]
    )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--copies", type=int, default=4, help="copies of the 34-page sample corpus at size N")
    parser.add_argument("--no-images", action="store_true")
    args = parser.parse_args()
    from distributed import Client

    extra = ["--no-images"] if args.no_images else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="cm3-dask-") as tmp:
        for scale in (1, 4):
            copies = args.copies * scale
            inputs = make_corpus(Path(tmp) / f"corpus{scale}", copies)
            direct = Path(tmp) / f"direct{scale}"
            direct_s = run_job(inputs, direct, extra)
            with local_dask_cluster(2) as address:
                dask = Path(tmp) / f"dask{scale}"
                dask_s = run_job(
                    inputs, dask, extra + ["--runner=DaskRunner", f"--dask_client_address={address}"]
                )
                with Client(address) as client:
                    peaks = sorted(client.run(peak_rss_mb).values())
            same = output_files(dask) == output_files(direct)
            pages = json.loads(Path(report_json_path(str(direct))).read_text())["funnel"][0]["docs"]
            rows.append(
                {
                    "pages": pages,
                    "worker_peak_mb": [round(p) for p in peaks],
                    "same_bytes": same,
                    "dask_seconds": round(dask_s, 1),
                    "direct_seconds": round(direct_s, 1),
                }
            )
            print(f"  done: {pages} pages", file=sys.stderr, flush=True)
    print(f"DaskRunner, LocalCluster of 2 worker processes; images {'off' if args.no_images else 'on'}")
    print(
        f"{'pages':>6}{'worker peak RSS (MB)':>24}{'same bytes as Direct':>22}{'Dask s':>9}{'Direct s':>10}"
    )
    for row in rows:
        peaks = " / ".join(str(p) for p in row["worker_peak_mb"])
        print(
            f"{row['pages']:>6}{peaks:>24}{str(row['same_bytes']):>22}{row['dask_seconds']:>9}{row['direct_seconds']:>10}"
        )
    growth = max(rows[1]["worker_peak_mb"]) / max(rows[0]["worker_peak_mb"])
    print(f"largest worker peak at 4N / N: {growth:.2f}x")
    print(json.dumps({"runs": rows, "peak_growth_4n": round(growth, 3)}))


if __name__ == "__main__":
    main()
