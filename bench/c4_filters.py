"""Benchmark c4_filters: documents/s on one core, with and without language detection, and each rule's share.

Corpus: the 106 labelled real pages of ../shared/data/boilerplate-dev (several languages), reduced with plain
lxml (scripts, styles, head, non-structural attributes dropped) to minimal-HTML-like documents and to
WET-like text (one line per block). Baselines in the same run: lxml parsing of the same documents
(HTML mode) and splitting + stripping the lines (plain mode). Every figure is the median of --repeats runs.

    .venv/bin/python bench/c4_filters.py [--repeats 5] [--pages DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would shadow the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

from lxml import etree  # noqa: E402

from c4_filters import C4Options, clean_html, clean_page  # noqa: E402
from c4_filters import rules as r  # noqa: E402
from c4_filters.badwords import ldnoobw_english  # noqa: E402
from c4_filters.blocks import read_blocks, remove_block  # noqa: E402
from c4_filters.html_clean import judge_block  # noqa: E402
from c4_filters.language import top_language  # noqa: E402
from c4_filters.stats import C4Stats  # noqa: E402
from html_minimizer.tree import parse_minimal, prune_empty_elements, serialize  # noqa: E402

PAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "boilerplate-dev" / "pages"
DROP = ("script", "style", "noscript", "template", "svg", "iframe", "form", "head")
KEEP_ATTRIBUTES = {"a": {"href", "title"}, "img": {"alt", "src", "title"}, "html": {"lang"}}
NO_LANGUAGE = C4Options(language=None)


def build_corpus(pages: Path) -> tuple[list[str], list[str]]:
    htmls, texts = [], []
    for path in sorted(pages.glob("*.html")):
        root = etree.fromstring(path.read_bytes(), etree.HTMLParser(remove_comments=True, remove_pis=True))
        etree.strip_elements(root, *DROP, with_tail=False)
        for el in root.iter():
            for name in list(el.attrib):
                if name not in KEEP_ATTRIBUTES.get(el.tag, ()):
                    del el.attrib[name]
        htmls.append(serialize(root))
        texts.append("\n".join(block.text for block in read_blocks(root, frozenset())))
    return htmls, texts


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_rule_times(texts: list[str]) -> dict[str, float]:
    """clean_page's rules stage by stage over the whole corpus (same order, same survivors)."""
    times: dict[str, float] = {}
    pages: list[list[str]] = []

    def stage(name: str, fn: Callable[[], None]) -> None:
        start = time.perf_counter()
        fn()
        times[name] = times.get(name, 0.0) + time.perf_counter() - start

    def split() -> None:
        pages.extend([line.strip() for line in text.split("\n")] for text in texts)

    def line_rule(keep: Callable[[str], bool]) -> Callable[[], None]:
        def run() -> None:
            for i, lines in enumerate(pages):
                pages[i] = [line for line in lines if keep(line)]

        return run

    def page_rule(drops: Callable[[str], bool]) -> Callable[[], None]:
        def run() -> None:
            for i, lines in enumerate(pages):
                if any(drops(line) for line in lines):
                    pages[i] = []

        return run

    def sentences() -> None:
        for i, lines in enumerate(pages):
            if r.count_sentences(lines) < 3:
                pages[i] = []

    def language() -> None:
        for lines in pages:
            if lines:
                top_language("\n".join(lines))

    def citations() -> None:
        for i, lines in enumerate(pages):
            pages[i] = [r.remove_citations(line)[0] for line in lines]

    stage("split lines", split)
    stage("line:too_long_word", line_rule(lambda line: not r.has_too_long_word(line, 1000)))
    stage("citations", citations)
    stage(
        "line:end_mark / ellipsis",
        line_rule(lambda line: not (r.lacks_end_mark(line) or r.ends_with_ellipsis(line))),
    )
    stage("line:too_few_words", line_rule(lambda line: not r.has_too_few_words(line, 5)))
    stage("page:lorem_ipsum", page_rule(lambda line: r.has_lorem_ipsum(line.lower())))
    stage("line:javascript", line_rule(lambda line: not r.mentions_javascript(line.lower())))
    stage("page:curly_bracket", page_rule(r.has_curly_bracket))
    stage("line:policy", line_rule(lambda line: not r.has_policy_phrase(line.lower())))
    stage(
        "page:too_few_sentences",
        lambda: [pages.__setitem__(i, p if r.count_sentences(p) >= 3 else []) for i, p in enumerate(pages)],
    )
    words = ldnoobw_english()
    stage("page:bad_words", page_rule(lambda line: words.find(line) is not None))
    stage("page:not_english", language)
    return times


def html_stage_times(htmls: list[str]) -> dict[str, float]:
    """clean_html's steps stage by stage over the whole corpus."""
    options = C4Options()
    times: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]):
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        return out

    roots = timed("parse (lxml)", lambda: [parse_minimal(h) for h in htmls])
    blocks = timed("read blocks", lambda: [read_blocks(root, options.exempt_tags) for root in roots])

    def line_rules() -> list[list]:
        kept_pages, stats = [], C4Stats()
        for page in blocks:
            kept = []
            for block in page:
                if judge_block(block, options, stats) is None:
                    kept.append(block)
                else:
                    remove_block(block)
            kept_pages.append(kept)
        return kept_pages

    kept = timed("line rules (all, incl. citations)", line_rules)
    timed(
        "page:too_few_sentences", lambda: [r.count_sentences(b.text for b in p if not b.exempt) for p in kept]
    )
    words = ldnoobw_english()
    timed("page:bad_words", lambda: [any(words.find(b.text) for b in p) for p in kept])
    timed("page:not_english", lambda: [top_language("\n".join(b.text for b in p)) for p in kept if p])
    timed("prune empty elements", lambda: [prune_empty_elements(root) for root in roots])
    timed("serialise", lambda: [serialize(root) for root in roots])
    return times


def print_shares(title: str, times: dict[str, float]) -> None:
    total = sum(times.values())
    print(f"\n{title} (stage by stage, total {total * 1000:.0f} ms)")
    for name, seconds in times.items():
        print(f"  {name:<36} {100 * seconds / total:5.1f} %")


def median_stage_times(fn: Callable[[], dict[str, float]], repeats: int) -> dict[str, float]:
    runs = [fn() for _ in range(repeats)]
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pages", type=Path, default=PAGES)
    args = parser.parse_args()

    htmls, texts = build_corpus(args.pages)
    n = len(htmls)
    top_language("warm up the language profiles")
    print(
        f"corpus: {n} real pages, {sum(map(len, htmls)) / n / 1000:.1f} kB HTML / "
        f"{sum(map(len, texts)) / n / 1000:.1f} kB text per page on average; median of {args.repeats} runs, one core"
    )

    cases = {
        "baseline: split + strip lines": lambda: [[line.strip() for line in t.split("\n")] for t in texts],
        "clean_page (C4, langdetect)": lambda: [clean_page(t) for t in texts],
        "clean_page, no language detection": lambda: [clean_page(t, options=NO_LANGUAGE) for t in texts],
        "baseline: lxml parse (HTMLParser)": lambda: [parse_minimal(h) for h in htmls],
        "clean_html (langdetect)": lambda: [clean_html(h) for h in htmls],
        "clean_html, no language detection": lambda: [clean_html(h, NO_LANGUAGE) for h in htmls],
    }
    seconds = {name: median_seconds(fn, args.repeats) for name, fn in cases.items()}
    print(f"\n{'case':<36} {'docs/s':>9} {'ms/doc':>8} {'x baseline':>11}")
    for name, s in seconds.items():
        baseline = seconds[
            "baseline: split + strip lines"
            if "page" in name or "split" in name
            else "baseline: lxml parse (HTMLParser)"
        ]
        print(f"{name:<36} {n / s:9.1f} {1000 * s / n:8.2f} {s / baseline:11.1f}")

    print_shares("clean_page rule shares", median_stage_times(lambda: plain_rule_times(texts), args.repeats))
    print_shares("clean_html step shares", median_stage_times(lambda: html_stage_times(htmls), args.repeats))


if __name__ == "__main__":
    main()
