"""End-to-end throughput of `cm3-data run` on the bundled sample corpus (DirectRunner).

Prints documents/s per core with image encoding off and on (in-process runner, one core), and the
speed-up from 1 to 2 workers (multi_processing) in the same run; medians of --repeats runs. The
Beam start-up cost is part of every figure (this is what a user sees on a small corpus); the
`--copies` option multiplies the corpus so the per-document work dominates.

    .venv/bin/python bench/pipeline.py [--repeats 3] [--copies 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main as cli_main  # noqa: E402
from pipeline.make_sample_corpus import corpus_copy  # noqa: E402


def make_corpus(directory: Path, copies: int) -> list[str]:
    """`copies` copies of the sample corpus under distinct host names (distinct pages and images)."""
    paths = []
    for i in range(copies):
        warc, dump = corpus_copy(i)
        (directory / f"copy{i}.warc.gz").write_bytes(warc)
        (directory / f"copy{i}.ndjson.tar.gz").write_bytes(dump)
        paths += [str(directory / f"copy{i}.warc.gz"), str(directory / f"copy{i}.ndjson.tar.gz")]
    return paths


def timed_run(inputs: list[str], extra: list[str]) -> tuple[float, int]:
    """(seconds, pages read) of one full run into a fresh directory."""
    out = Path(tempfile.mkdtemp(prefix="cm3-bench-")) / "shards"
    args = ["run", "--output", str(out), "--no-fetch", "--quiet"]
    for path in inputs:
        args += ["--input", path]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(args + extra)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"run failed ({code}): {extra}")
    report = json.loads((out / "report.json").read_text())
    shutil.rmtree(out.parent)
    return elapsed, report["funnel"][0]["docs"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as corpus_dir:
        inputs = make_corpus(Path(corpus_dir), args.copies)
        configs = {
            "images off, 1 core": ["--no-images"],
            "images on, 1 core": [],
            "images on, 2 workers": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
            "images on, 1 worker (multi_processing)": [
                "--direct_running_mode=multi_processing",
                "--direct_num_workers=1",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in configs}
        pages = 0
        for _ in range(args.repeats):  # interleaved, so load changes on the machine hit every config alike
            for name, extra in configs.items():
                elapsed, pages = timed_run(inputs, extra)
                times[name].append(elapsed)
    print(
        f"corpus: {pages} pages ({args.copies} copies of the sample corpus), medians of {args.repeats} runs"
    )
    print(f"{'configuration':<42}{'seconds':>9}{'docs/s/core':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        cores = 2 if "2 workers" in name else 1
        print(f"{name:<42}{median:>9.2f}{pages / median / cores:>13.2f}")
    one = statistics.median(times["images on, 1 worker (multi_processing)"])
    two = statistics.median(times["images on, 2 workers"])
    off = statistics.median(times["images off, 1 core"])
    on = statistics.median(times["images on, 1 core"])
    print(f"speed-up 1 -> 2 workers (multi_processing, images on): {one / two:.2f}x")
    print(f"image encoding cost: {on / off:.2f}x the time of the run without images")


if __name__ == "__main__":
    main()
