"""End-to-end throughput of `cm3-data run` on copies of the bundled sample corpus (DirectRunner).

Prints documents/s per core with image encoding off and on (in-process runner, one core), the speed-up
from 1 to 2 workers (multi_processing, images on), and Beam's overhead: the job's steady-state time per page
(the slope between `--copies` and twice as many, images off, so start-up cancels out) divided by the time of
the same per-document functions called in a plain loop on the same pages (read, minimize + C4, URL and span
dedup, image removal, shard rows, Parquet). Medians of --repeats runs, configurations interleaved.

    .venv/bin/python bench/pipeline.py [--repeats 3] [--copies 24]
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

from c4_filters import C4Options  # noqa: E402
from html_minimizer import Limits  # noqa: E402
from pipeline import doc_steps, shards  # noqa: E402
from pipeline.cli import main as cli_main  # noqa: E402
from pipeline.items import Page  # noqa: E402
from pipeline.make_sample_corpus import corpus_copy  # noqa: E402
from pipeline.readers import read_input  # noqa: E402


def make_corpus(directory: Path, copies: int) -> list[str]:
    """`copies` copies of the sample corpus under distinct host names (distinct pages and images)."""
    directory.mkdir(parents=True, exist_ok=True)
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
    report = json.loads(Path(shards.report_json_path(str(out))).read_text())
    shutil.rmtree(out.parent)
    return elapsed, report["funnel"][0]["docs"]


def in_process_seconds(inputs: list[str]) -> tuple[float, int]:
    """(seconds, pages) of the job's per-document functions in a plain loop, images off, one shard."""
    c4, limits = C4Options(), Limits()
    start = time.perf_counter()
    docs: dict[str, list] = {}
    pages = 0
    for path in inputs:
        for item in read_input(path):
            if isinstance(item, Page):
                pages += 1
                for out in doc_steps.minimize_and_clean(item, c4, limits):
                    if isinstance(out, doc_steps.Doc):
                        docs.setdefault(out.url, []).append(out)
    unique = [
        doc
        for url, group in docs.items()
        for doc in doc_steps.url_winner(url, group)
        if isinstance(doc, doc_steps.Doc)
    ]
    spans: dict[int, list] = {}
    for doc in unique:
        for span, occurrence in doc_steps.doc_spans(doc, c4):
            spans.setdefault(span, []).append(occurrence)
    drop: dict[str, list[int]] = {}
    for occurrences in spans.values():
        for url, start in doc_steps.span_losers(occurrences):
            drop.setdefault(url, []).append(start)
    rows = []
    for doc in unique:
        for kept in doc_steps.apply_span_dedup(doc, drop.get(doc.url, []), c4):
            if isinstance(kept, doc_steps.Doc):
                for final in doc_steps.rewrite_images(kept, {}, False):
                    if isinstance(final, doc_steps.Doc):
                        rows.append(doc_steps.doc_row(final))
    shards.write_parquet(io.BytesIO(), shards.sorted_rows(rows))
    return time.perf_counter() - start, pages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=24, help="copies of the 34-page corpus (24: 816 pages)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as corpus_dir:
        inputs = make_corpus(Path(corpus_dir) / "small", args.copies)
        doubled = make_corpus(Path(corpus_dir) / "double", 2 * args.copies)
        configs = {
            "images off, 1 core": (inputs, ["--no-images"]),
            f"images off, 1 core, {2 * args.copies} copies": (doubled, ["--no-images"]),
            "images on, 1 core": (inputs, []),
            "images on, 1 worker (multi_processing)": (
                inputs,
                ["--direct_running_mode=multi_processing", "--direct_num_workers=1"],
            ),
            "images on, 2 workers": (
                inputs,
                ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in configs}
        pages: dict[str, int] = {}
        plain: list[float] = []
        for _ in range(args.repeats):  # interleaved, so load changes on the machine hit every config alike
            seconds, plain_pages = in_process_seconds(inputs)
            plain.append(seconds)
            for name, (corpus, extra) in configs.items():
                elapsed, pages[name] = timed_run(corpus, extra)
                times[name].append(elapsed)
    n = pages["images off, 1 core"]
    print(f"corpus: {n} pages ({args.copies} copies of the sample corpus), medians of {args.repeats} runs")
    print(f"{'configuration':<46}{'pages':>7}{'seconds':>9}{'docs/s/core':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        cores = 2 if "2 workers" in name else 1
        print(f"{name:<46}{pages[name]:>7}{median:>9.2f}{pages[name] / median / cores:>13.2f}")
    plain_s = statistics.median(plain)
    print(
        f"{'same functions in a plain loop, images off':<46}{plain_pages:>7}{plain_s:>9.2f}{plain_pages / plain_s:>13.2f}"
    )
    one = statistics.median(times["images on, 1 worker (multi_processing)"])
    two = statistics.median(times["images on, 2 workers"])
    off = statistics.median(times["images off, 1 core"])
    off_2x = statistics.median(times[f"images off, 1 core, {2 * args.copies} copies"])
    on = statistics.median(times["images on, 1 core"])
    steady = (off_2x - off) / (pages[f"images off, 1 core, {2 * args.copies} copies"] - n)
    overhead = steady / (plain_s / plain_pages)
    print(f"speed-up 1 -> 2 workers (multi_processing, images on): {one / two:.2f}x (target >= 1.7)")
    print(f"image encoding cost: {on / off:.2f}x the time of the run without images")
    print(
        f"steady state, images off: {steady * 1000:.2f} ms/page in the job vs {plain_s / plain_pages * 1000:.2f} "
        f"in a plain loop: {overhead:.2f}x (target <= 1.5)"
    )
    print(
        json.dumps(
            {
                "pages": n,
                "speedup_2_workers": round(one / two, 3),
                "steady_state_overhead": round(overhead, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
