"""Helpers for the corpus-wide dedup (CM3: "discard all but one of any three-sentence span occurring more
than once"). The pipeline emits `span_hashes` of every cleaned page, picks a winner per hash, and calls
`drop_blocks` on the losers with the blocks their duplicate spans start in.

Spans slide over the sentences of a page's non-exempt blocks in order (a span may cross block borders);
a span's text is normalised (case-folded, whitespace collapsed) before hashing.
"""

from __future__ import annotations

from collections.abc import Collection

from c4_filters.blocks import parse, read_blocks, remove_block
from c4_filters.hashing import stable_hash
from c4_filters.html_clean import CleanResult, finish_page
from c4_filters.rules import DEFAULT_OPTIONS, C4Options
from c4_filters.sentences import split_sentences
from c4_filters.stats import C4Stats

SPAN_SENTENCES = 3


def span_hashes(html: str, options: C4Options = DEFAULT_OPTIONS) -> list[tuple[int, int]]:
    """(block_index, stable_hash(span)) for every three-sentence span of a cleaned page, in order.

    block_index is the index of the block the span's first sentence is in, as `drop_blocks` counts blocks.
    """
    root = parse(html)
    if root is None:
        return []
    sentences = [
        (block.index, " ".join(sentence.casefold().split()))
        for block in read_blocks(root, options.exempt_tags)
        if not block.exempt
        for sentence in split_sentences(block.text)
    ]
    return [
        (sentences[i][0], stable_hash(" ".join(text for _, text in sentences[i : i + SPAN_SENTENCES])))
        for i in range(len(sentences) - SPAN_SENTENCES + 1)
    ]


def drop_blocks(
    html: str,
    block_indices: Collection[int],
    options: C4Options = DEFAULT_OPTIONS,
    stats: C4Stats | None = None,
) -> CleanResult | None:
    """The cleaned page without those blocks, after re-applying the page rules; None = page dropped.

    Counts go to "dedup:*" names; indices that name no block are counted ("dedup:unknown_block") and ignored.
    """
    stats = stats if stats is not None else C4Stats()
    stats.inc("dedup:page:read")
    root = parse(html)
    if root is None:
        stats.inc("dedup:page:unparseable")
        return None
    blocks = read_blocks(root, options.exempt_tags)
    wanted = set(block_indices)
    stats.inc("dedup:unknown_block", sum(1 for i in wanted if not 0 <= i < len(blocks)))
    kept = []
    for block in blocks:
        if block.index in wanted:
            remove_block(block)
            stats.inc("dedup:line:duplicate")
        else:
            kept.append(block)
    return finish_page(root, kept, options, stats, prefix="dedup:")
