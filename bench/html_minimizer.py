"""Throughput of html_minimizer.minimize on the 106 labelled real pages in ../shared/data/boilerplate-dev,
against plain lxml parsing of the same pages in the same run (one core, CPU time, medians of repeats).

    .venv/bin/python bench/html_minimizer.py [--repeats 7] [--data ../shared/data/boilerplate-dev]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# run as a script, this file's folder comes first on sys.path and its name would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

import lxml.html  # noqa: E402
from lxml import etree  # noqa: E402

from html_minimizer import MinimizeError, minimize  # noqa: E402
from html_minimizer.charset import to_clean_utf8  # noqa: E402
from html_minimizer.core import _parser  # noqa: E402

DEFAULT_DATA = _HERE.parents[1] / "shared" / "data" / "boilerplate-dev"


def load(data: Path) -> list[tuple[str, bytes]]:
    items = json.loads((data / "evaldata.json").read_text(encoding="utf-8"))
    return [(url, (data / "pages" / item["file"]).read_bytes()) for url, item in items.items()]


def cpu_seconds(fn, pages) -> float:
    start = time.process_time()  # CPU time: other processes on a shared machine do not count
    for url, raw in pages:
        fn(raw, url)
    return time.process_time() - start


def run_minimize(raw: bytes, url: str) -> None:
    try:
        minimize(raw, url)
    except MinimizeError:
        pass


def decode_and_parse(raw: bytes, url: str) -> None:
    """The part of minimize that is decoding and libxml2 parsing (the rest: limits, cleaning, serialising)."""
    etree.fromstring(to_clean_utf8(raw)[0], _parser())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pages = load(args.data)
    megabytes = sum(len(raw) for _, raw in pages) / 1e6
    lxml_times, parse_times, minimize_times = [], [], []
    for _ in range(args.repeats):  # interleaved, so that all see the same machine load
        lxml_times.append(cpu_seconds(lambda raw, url: lxml.html.fromstring(raw), pages))
        parse_times.append(cpu_seconds(decode_and_parse, pages))
        minimize_times.append(cpu_seconds(run_minimize, pages))
    lxml_s, minimize_s = statistics.median(lxml_times), statistics.median(minimize_times)
    parse_s = statistics.median(parse_times)
    print(
        f"{len(pages)} pages, {megabytes:.1f} MB, {args.repeats} repeats, medians of CPU seconds (one core)"
    )
    print(
        f"lxml.html.fromstring  {lxml_s:7.3f} s  {megabytes / lxml_s:7.1f} MB/s  {len(pages) / lxml_s:7.0f} pages/s"
    )
    print(
        f"minimize              {minimize_s:7.3f} s  {megabytes / minimize_s:7.1f} MB/s  "
        f"{len(pages) / minimize_s:7.0f} pages/s"
    )
    print(f"ratio minimize / lxml parse: {minimize_s / lxml_s:.2f}")
    print(
        f"  of which decoding + parsing {parse_s / lxml_s:.2f}, "
        f"the rest (limits, cleaning, serialising) {(minimize_s - parse_s) / lxml_s:.2f}"
    )


if __name__ == "__main__":
    main()
