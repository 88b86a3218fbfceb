"""Throughput of html_minimizer.minimize on the 106 labelled real pages in ../shared/data/boilerplate-dev,
against plain lxml parsing of the same pages in the same run (one core, CPU time, medians of repeats).

    .venv/bin/python bench/html_minimizer.py [--repeats 7] [--data ../shared/data/boilerplate-dev] [--floors]

It also lists, per rule of the walk (`MinimalPage.removed`), how many elements it removed on these pages.
--floors also times what any minimizer built on lxml pays before its first rule (decoding, parsing, freeing
the tree, a Python walk that only reads each element), a libxml2 SAX target, and, when `selectolax` is
importable (it is not a dependency: `pip install selectolax` in a scratch virtualenv), Lexbor's parse and
node walk, all as shares of the same lxml parse.
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
from html_minimizer.rules import DROP_TAGS  # noqa: E402
from html_minimizer.tree import parser  # noqa: E402

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
    etree.fromstring(to_clean_utf8(raw)[0], parser())


def _read_every_element(parent) -> None:
    """The least a walk over the tree can do: read each element's text, attribute names, child count, tail."""
    for el in parent:
        _ = (el.text, el.keys(), el.tail)
        if len(el):
            _read_every_element(el)


class _NullTarget:
    """SAX callbacks that do nothing: the cost of streaming libxml2's events into Python."""

    def start(self, tag, attrib):
        pass

    def end(self, tag):
        pass

    def data(self, text):
        pass

    def close(self):
        return None


def floors(pages: list[tuple[str, bytes]], repeats: int) -> dict[str, float]:
    """CPU seconds (medians, interleaved) of the fixed costs under any lxml-based minimizer."""
    clean = [to_clean_utf8(raw)[0] for _, raw in pages]
    sax = etree.HTMLParser(target=_NullTarget(), encoding="utf-8", remove_comments=True, no_network=True)

    def timed(fn, *args) -> float:
        start = time.process_time()
        fn(*args)
        return time.process_time() - start

    def bodies() -> list:
        """Each page's body without script/style/...: what minimize walks."""
        found = []
        for data in clean:
            body = etree.fromstring(data, parser()).find("body")
            if body is not None:
                etree.strip_elements(body, *DROP_TAGS, with_tail=False)
                found.append(body)
        return found

    def iterate(trees) -> None:
        for body in trees:
            for _ in body.iter():
                pass

    def walk(trees) -> None:
        for body in trees:
            _read_every_element(body)

    def parse_keep_free() -> tuple[float, float]:
        start = time.process_time()
        trees = [etree.fromstring(data, parser()) for data in clean]
        parsed = time.process_time()
        del trees
        return parsed - start, time.process_time() - parsed

    cases = {
        "lxml.html.fromstring (baseline)": lambda: [lxml.html.fromstring(raw) for _, raw in pages],
        "decoding to clean UTF-8": lambda: [to_clean_utf8(raw) for _, raw in pages],
        "SAX target, empty callbacks": lambda: [etree.fromstring(data, sax) for data in clean],
    }
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError:
        LexborHTMLParser = None
    if LexborHTMLParser is not None:

        def lexbor_walk() -> None:
            for _, raw in pages:
                for node in LexborHTMLParser(raw).body.traverse(include_text=True):
                    _ = (node.tag, node.attributes if node.tag != "-text" else node.text_content)

        cases["Lexbor parse (selectolax)"] = lambda: [LexborHTMLParser(raw) for _, raw in pages]
        cases["Lexbor parse + read every node"] = lexbor_walk
    times: dict[str, list[float]] = {name: [] for name in cases}
    for name in ("parse (minimize's parser)", "freeing the tree", "iterate body elements", "minimal walk"):
        times[name] = []
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
        parse_s, free_s = parse_keep_free()
        times["parse (minimize's parser)"].append(parse_s)
        times["freeing the tree"].append(free_s)
        times["iterate body elements"].append(timed(iterate, bodies()))
        times["minimal walk"].append(timed(walk, bodies()))
    return {name: statistics.median(values) for name, values in times.items()}


def removals(pages: list[tuple[str, bytes]]) -> dict[str, tuple[int, int]]:
    """Per rule of `MinimalPage.removed`: elements it removed over all pages, and on how many pages."""
    found: dict[str, tuple[int, int]] = {}
    for url, raw in pages:
        try:
            removed = minimize(raw, url).removed
        except MinimizeError:
            continue
        for rule, n in removed:
            total, n_pages = found.get(rule, (0, 0))
            found[rule] = (total + n, n_pages + 1)
    return dict(sorted(found.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--floors", action="store_true", help="also time the fixed costs (see above)")
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
    print("\nelements removed per rule (MinimalPage.removed), over all pages:")
    for rule, (n, n_pages) in removals(pages).items():
        print(f"  {rule:20s} {n:7d}  on {n_pages:3d} pages")
    if args.floors:
        figures = floors(pages, args.repeats)
        base = figures["lxml.html.fromstring (baseline)"]
        print("\nfixed costs, as shares of lxml.html.fromstring in this pass:")
        for name, seconds in figures.items():
            print(f"  {name:34s} {seconds / base:5.2f}")
        if not any(name.startswith("Lexbor") for name in figures):
            print("  (selectolax not importable: Lexbor rows skipped)")


if __name__ == "__main__":
    main()
