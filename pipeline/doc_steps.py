"""What each step of the job does to a document, as plain functions: no Beam here (`pipeline.beam_steps`
wraps them in Beam composites, `pipeline.graph` wires those).

Every function yields its result(s) and `Count` events, so a bad document is a counted skip. Winners of
every de-duplication are chosen by content/URL hashes only, never by arrival order, so any runner and any
re-run gives the same documents.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from c4_filters import C4Options, C4Stats, clean_html, drop_spans, span_hashes, stable_hash
from html_minimizer import (
    Limits,
    MinimizeError,
    all_image_srcs,
    minimize,
    prune_empty,
    replace_images_and_prune,
)
from pipeline import counters
from pipeline.items import Count, Page

LOG = logging.getLogger(__name__)
T = TypeVar("T")

SPLITS = ("train", "validation")
SOURCE_PRIORITY = {"warc": 0, "wikipedia": 1, "html": 2}


@dataclass(frozen=True)
class Doc:
    """A document between stages: minimal HTML after C4 cleaning (and later dedup / image rewriting)."""

    url: str
    source: str
    html: str
    lang_score: float = 0.0
    language: str = ""  # the detected language ("" when detection is off)
    image_urls: tuple[str, ...] = ()  # source URL of each <img>, in document order (set by rewrite_images)


def counts_from_c4(stats: C4Stats, prefix: str = counters.C4) -> Iterator[Count]:
    for name, n in stats.as_dict().items():
        yield Count(prefix + name, n)


def doc_id(url: str) -> str:
    """Hex stable hash of the URL: the `id` column, also the sort key inside a shard."""
    return f"{stable_hash(url):016x}"


# ---------------------------------------------------------------- minimize + C4


def minimize_and_clean(page: Page, options: C4Options, limits: Limits) -> Iterator[Doc | Count]:
    """Page -> minimal HTML (CM3 3.1) -> C4 in HTML mode (T5 2.2). Failures are counted per typed error / rule."""
    try:
        minimal = minimize(page.body, page.url, charset=page.charset, limits=limits)
    except MinimizeError as error:
        yield Count(counters.MINIMIZE_ERROR + type(error).__name__)
        return
    except Exception as error:  # untrusted input must never crash the job: counted, logged
        LOG.warning("minimize crashed on %s: %r", page.url, error)
        yield Count(counters.MINIMIZE_UNEXPECTED)
        return
    yield Count(counters.MINIMIZE_OK)
    for rule, n in minimal.removed:
        yield Count(counters.MINIMIZE_REMOVED + rule, n)
    stats = C4Stats()
    try:
        cleaned = clean_html(minimal.html, options, stats)
    except Exception as error:
        LOG.warning("clean_html crashed on %s: %r", page.url, error)
        yield Count(counters.C4_UNEXPECTED)
        return
    yield from counts_from_c4(stats)
    if cleaned is None:
        yield Count(counters.C4_DROPPED)
        return
    yield Count(counters.C4_KEPT)
    yield Doc(
        url=page.url,
        source=page.source,
        html=cleaned.html,
        lang_score=float(cleaned.lang_score),
        language=cleaned.language,
    )


# ---------------------------------------------------------------- URL dedup


def url_winner(url: str, docs: Iterable[Doc]) -> Iterator[Doc | Count]:
    """One document per URL: the smallest (source priority, html) wins, independent of arrival order.

    Streamed: one candidate is held, however many times a URL was crawled."""
    best, best_key, seen = None, None, 0
    for doc in docs:
        seen += 1
        key = (SOURCE_PRIORITY.get(doc.source, 9), doc.source, doc.html)
        if best_key is None or key < best_key:
            best, best_key = doc, key
    if seen > 1:
        yield Count(counters.URL_DUPLICATES_DROPPED, seen - 1)
    if best is not None:
        yield best


# ---------------------------------------------------------------- three-sentence span dedup


def doc_spans(doc: Doc, options: C4Options = C4Options()) -> Iterator[tuple[int, tuple[str, int]]]:
    """(span hash, (url, span start)) for every three-sentence span of a cleaned document."""
    for start, span in span_hashes(doc.html, options):
        yield span, (doc.url, start)


def losers(items: Iterable[T], key: Callable[[T], tuple]) -> Iterator[T]:
    """All items but the one with the smallest `key`, streamed: the current winner is the only item held,
    whether a group holds two items or a million. A loser may be yielded more than once (callers take the
    set). The dedup rules' one winner rule: order-free, deterministic, bounded memory."""
    best, best_key = None, None
    for item in items:
        item_key = key(item)
        if best_key is None or item_key < best_key:
            if best is not None:
                yield best
            best, best_key = item, item_key
        elif item_key != best_key:
            yield item


def span_losers(occurrences: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """(url, span start) to drop for one span hash: all but one occurrence survive the paper's rule (T5 2.2).

    The survivor is the first occurrence in the document with the smallest stable_hash(url) (URL as tie-break);
    repeats inside that same document are dropped too ("discard all but one"). Streamed (`losers`).
    """
    return losers(occurrences, lambda occurrence: (stable_hash(occurrence[0]), *occurrence))


def apply_span_dedup(doc: Doc, span_starts: Iterable[int], options: C4Options) -> Iterator[Doc | Count]:
    """Drop every sentence of the document's losing span occurrences, then the blocks left without text;
    the page rules are re-applied (the page may be dropped). Counted: documents touched and dropped,
    sentences and whole blocks removed."""
    span_starts = sorted(set(span_starts))
    if not span_starts:
        yield doc
        return
    yield Count(counters.SPAN_DOCS_TOUCHED)
    stats = C4Stats()
    cleaned = drop_spans(doc.html, span_starts, options, stats)
    yield Count(counters.SPAN_SENTENCES_DROPPED, stats["dedup:sentence:duplicate"])
    yield Count(counters.SPAN_BLOCKS_DROPPED, stats["dedup:line:duplicate"])
    yield from counts_from_c4(stats)
    if cleaned is None:
        yield Count(counters.SPAN_DOCS_DROPPED)
        return
    yield replace(doc, html=cleaned.html)


# ---------------------------------------------------------------- images


def image_srcs(html: str) -> list[str]:
    """Distinct <img src> values of a minimal HTML document, in document order."""
    return list(dict.fromkeys(src for src in all_image_srcs(html) if src))


def count_code_images(html: str) -> int:
    """Number of <img> elements in the final document (all of them carry codes in their src by then)."""
    return len(all_image_srcs(html))


def rewrite_images(
    doc: Doc, codes: dict[str, str | None], images_enabled: bool, max_images: int = 0
) -> Iterator[Doc | Count]:
    """Write each image's codes into its src; images that failed (None) are removed from the document, and
    so are the distinct images past the first `max_images` (0 = no cap; counted images.refs_over_doc_cap).
    References are counted per <img>, not per distinct URL. The kept images' source URLs are recorded in
    document order (`image_urls`, for opt-out replays).

    Last, elements left without text or an image (the `<a>`, `<figure>`, `<div>` around a removed image or
    around lines C4 dropped) go: CM3 §3.1's rule holds on the final document. Any later removal of images
    belongs before that pass."""
    srcs = all_image_srcs(doc.html)
    refs = Counter(src for src in srcs if src)  # <img> elements per src: a page may show one image twice
    if refs:
        mapping: dict[str, str | None] = {}
        for index, (src, n_refs) in enumerate(refs.items()):
            code = codes.get(src) if images_enabled else None
            if max_images and index >= max_images:
                code = None
                yield Count(counters.IMAGES_REFS_OVER_DOC_CAP, n_refs)
            mapping[src] = code
            yield Count(
                counters.IMAGES_REFS_KEPT if code is not None else counters.IMAGES_REFS_REMOVED, n_refs
            )
        kept = tuple(src for src in srcs if mapping.get(src) is not None)
        html, n_empty = replace_images_and_prune(doc.html, mapping)
    else:
        kept = ()
        html, n_empty = prune_empty(doc.html)
    if n_empty:
        yield Count(counters.EMPTY_ELEMENTS_REMOVED, n_empty)
    yield doc if html == doc.html and kept == doc.image_urls else replace(doc, html=html, image_urls=kept)


# ---------------------------------------------------------------- split + shards


def assign_split(url: str, validation_fraction: float) -> str:
    """Deterministic train/validation split by URL hash."""
    bucket = stable_hash("split:" + url) % 1_000_000
    return "validation" if bucket < round(validation_fraction * 1_000_000) else "train"


def shard_index(url: str, n_shards: int) -> int:
    return stable_hash("shard:" + url) % n_shards


def doc_row(doc: Doc) -> dict:
    """One row of a document shard (the contract's columns)."""
    return {
        "id": doc_id(doc.url),
        "url": doc.url,
        "source": doc.source,
        "html": doc.html,
        "n_images": count_code_images(doc.html),
        "n_chars": len(doc.html),
        "lang_score": doc.lang_score,
        "language": doc.language,
        "image_urls": list(doc.image_urls),
    }
