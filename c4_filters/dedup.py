"""Helpers for the corpus-wide dedup of T5 section 2.2: "we discarded all but one of any three-sentence span
occurring more than once in the data set". The pipeline emits `span_hashes` of every cleaned page, picks
one winning occurrence per hash, and calls `drop_spans` on each page with the spans it lost: every sentence
of a losing occurrence goes, then every block left without text, then the page rules are applied again.

Sentences are those of a page's non-exempt blocks, numbered in order across the page (a span may cross
block borders); a span is named by the number of its first sentence. A span's text is normalised
(case-folded, whitespace collapsed) before hashing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from c4_filters.blocks import Block, read_blocks, remove_block
from c4_filters.hashing import key_hash
from c4_filters.html_clean import CleanResult, finish_page
from c4_filters.rules import DEFAULT_OPTIONS, C4Options
from c4_filters.sentences import split_sentences
from c4_filters.stats import C4Stats
from html_minimizer.tree import parse_minimal

SPAN_SENTENCES = 3


def _sentences(block: Block, options: C4Options) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `block.text`: the splitter's sentences are stripped slices of the
    text, in order, so each is found after the previous one."""
    found, position = [], 0
    for sentence in split_sentences(block.text, options.script_end_marks):
        start = block.text.index(sentence, position)
        position = start + len(sentence)
        found.append((start, position))
    return found


def _page_sentences(blocks: list[Block], options: C4Options) -> list[tuple[Block, int, int]]:
    """(block, start, end) of every sentence of the non-exempt blocks, in page order."""
    return [
        (block, start, end)
        for block in blocks
        if not block.exempt
        for start, end in _sentences(block, options)
    ]


def span_hashes(html: str, options: C4Options = DEFAULT_OPTIONS) -> list[tuple[int, int]]:
    """(span start, key_hash(span)) for every three-sentence span of a cleaned page, in order; the span
    start is the number of its first sentence, as `drop_spans` counts them. The hash is the signed form: it
    is the key of the corpus-wide span shuffle."""
    root = parse_minimal(html)
    if root is None:
        return []
    sentences = [
        " ".join(block.text[start:end].casefold().split())
        for block, start, end in _page_sentences(read_blocks(root, options.exempt_tags), options)
    ]
    return [
        (i, key_hash(" ".join(sentences[i : i + SPAN_SENTENCES])))
        for i in range(len(sentences) - SPAN_SENTENCES + 1)
    ]


def drop_spans(
    html: str,
    span_starts: Collection[int],
    options: C4Options = DEFAULT_OPTIONS,
    stats: C4Stats | None = None,
) -> CleanResult | None:
    """The cleaned page without the three sentences of each losing span, after re-applying the page rules;
    None = page dropped. Overlapping spans lose the union of their sentences. A block all of whose text
    went is removed as a whole (its images stay); other blocks keep their remaining sentences.

    Counts go to "dedup:*" names: sentences removed ("dedup:sentence:duplicate"), blocks removed
    ("dedup:line:duplicate"), blocks that kept some sentences ("dedup:line:shortened"), and span starts that
    name no span of the page ("dedup:unknown_span", ignored).
    """
    stats = stats if stats is not None else C4Stats()
    stats.inc("dedup:page:read")
    root = parse_minimal(html)
    if root is None:
        stats.inc("dedup:page:unparseable")
        return None
    blocks = read_blocks(root, options.exempt_tags)
    sentences = _page_sentences(blocks, options)
    n_spans = len(sentences) - SPAN_SENTENCES + 1
    starts = set(span_starts)
    stats.inc("dedup:unknown_span", sum(1 for s in starts if not 0 <= s < n_spans))
    doomed = {s + k for s in starts if 0 <= s < n_spans for k in range(SPAN_SENTENCES)}
    stats.inc("dedup:sentence:duplicate", len(doomed))
    cut: dict[int, list[tuple[int, int]]] = {}
    for i in sorted(doomed):
        block, start, end = sentences[i]
        cut.setdefault(block.index, []).append((start, end))
    per_block = Counter(block.index for block, _, _ in sentences)
    kept = []
    for block in blocks:
        spans = cut.get(block.index)
        if spans is None:
            kept.append(block)
        elif len(spans) == per_block[block.index]:
            remove_block(block)
            stats.inc("dedup:line:duplicate")
        else:
            block.cut_text(spans)
            stats.inc("dedup:line:shortened")
            kept.append(block)
    return finish_page(root, kept, options, stats, prefix="dedup:")
